"""A commit stopped by SIGTERM (cron's timeout, systemd stopping the job) at each step leaves nothing that
counts: no set, no temporary file, nothing of another set touched. Real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dbkeeper.repo import Repository
from dbkeeper.storage.local import LocalStore

_CHILD = """
import signal, sys, time, hashlib
from dbkeeper.cli import _on_sigterm, Terminated
from dbkeeper.repo import Repository, names
from dbkeeper.repo.manifest import Manifest
from dbkeeper.storage.local import LocalStore

signal.signal(signal.SIGTERM, _on_sigterm)
root, step = sys.argv[1], sys.argv[2]
name = "app-1/app_20261127_020000.db.gz"
data = b"x" * 100_000

def chunks():
    yield data
    if step == "data":
        print("ready", flush=True)
        time.sleep(60)

def build(size):
    if step == "manifest":
        print("ready", flush=True)
        time.sleep(60)
    return Manifest(engine="sqlite", source_id="app-1", database="app", file=names.basename(name),
        created_at="2026-11-27T02:00:00Z", completed_at="2026-11-27T02:00:00Z", duration_s=0.0, size_bytes=size,
        sha256=hashlib.sha256(data).hexdigest(), compression="gzip", encryption=None, dump_format="sqlite")

try:
    Repository(LocalStore(root)).commit(name, chunks(), build)
except Terminated:
    sys.exit(143)
"""


@pytest.mark.parametrize("step", ["data", "manifest"])
def test_sigterm_during_a_commit_leaves_nothing(tmp_path: Path, step: str) -> None:
    root = tmp_path / "store"
    LocalStore(root).put("app-1/keep.txt", [b"another object"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root), step], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGTERM)
    assert child.wait(30) == 143
    repo = Repository(LocalStore(root))
    assert repo.scan(datetime.now(UTC)).entries == []
    assert repo.leftovers(datetime.now(UTC)) == []
    assert sorted(p.name for p in (root / "app-1").iterdir()) == ["keep.txt"]
