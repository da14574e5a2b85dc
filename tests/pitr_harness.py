"""A cluster that archives its WAL into a store through ``dbkeeper wal-push`` (run by the server as its OS user,
as in production), a ledger writer that records when each commit was acknowledged, and the dbkeeper commands a
point-in-time restore test runs.

The oracle (PITR.md §5): recovery targets compare commit times, so a restore to T holds every ledger id whose
commit was acknowledged before T, and none whose INSERT was sent after T (its commit came later still).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from helpers import run_dbkeeper
from pg import Cluster, server_dbkeeper


def shared_dir(prefix: str) -> Path:
    """A directory the server's OS user can write and we can read (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o777)
    return path


def server_env(aws: Mapping[str, str] | None) -> str:
    """``env K=V …`` for archive_command: the S3 endpoint and keys, without root's config files."""
    if not aws:
        return ""
    keep = {k: v for k, v in aws.items() if k not in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")}
    keep.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    return "env " + " ".join(f"{k}={v}" for k, v in sorted(keep.items())) + " "


@dataclass
class Archiving:
    """A running cluster whose archive_command pushes into ``store`` as ``source``."""

    cluster: Cluster
    store: str
    source: str
    basedir: Path
    pg_bin: str

    @classmethod
    def start(
        cls,
        bindir: Path,
        store: str,
        source: str = "pitrdb",
        aws: Mapping[str, str] | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> Archiving:
        basedir = Path(tempfile.mkdtemp(prefix="dbkeeper-pitr-pg-"))
        command = f"{server_env(aws)}{server_dbkeeper()} wal-push %p --source {source} --store {store}"
        conf = {
            "wal_level": "replica",
            "archive_mode": "on",
            "archive_command": command,
            "archive_timeout": "1s",
            "synchronous_commit": "on",
            "max_wal_senders": "5",
            **(settings or {}),
        }
        cluster = Cluster.start(bindir, basedir, settings=conf)
        return cls(cluster, store, source, basedir, str(Path(bindir).resolve()))

    def dbk(self, *argv: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return run_dbkeeper(*argv, env={**self.cluster.env(), **kw.pop("env", {})}, **kw)

    def basebackup(self, *extra: str, check: bool = True) -> dict[str, Any]:
        done = self.dbk(
            "basebackup", self.cluster.url(), "--source", self.source, "--store", self.store,
            "--pg-bin", self.pg_bin, "--json", *extra,
        )  # fmt: skip
        if check:
            assert done.returncode == 0, done.stderr + done.stdout
        return json.loads(done.stdout) if done.stdout.strip() else {"stderr": done.stderr, "code": done.returncode}

    def restore(self, datadir: Path, *extra: str, sock: Path | None = None) -> subprocess.CompletedProcess[str]:
        args = ["restore", "--pitr", str(datadir), "--source", self.source, "--store", self.store]
        args += ["--pg-bin", self.pg_bin, "--wal-fetch-command", server_dbkeeper(), "--json"]
        if sock is not None:
            args += ["--socket-dir", str(sock), "--keep-running"]
        return self.dbk(*args, *extra)

    def switch_wal(self) -> None:
        self.cluster.psql("SELECT pg_switch_wal()")

    def crash(self) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", self.cluster.tool("pg_ctl"), "stop", "-D", str(self.cluster.datadir),
             "-m", "immediate", "-w"],
            cwd="/", capture_output=True, check=False,
        )  # fmt: skip

    def stop(self) -> None:
        self.cluster.stop()
        shutil.rmtree(self.basedir, ignore_errors=True)


@dataclass
class Ledger:
    """Inserts ids 1, 2, 3 … every ``interval`` s, one transaction each, and records (id, sent, acknowledged)."""

    cluster: Cluster
    interval: float = 0.1
    rows: list[tuple[int, float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Ledger:
        self.cluster.psql("CREATE TABLE IF NOT EXISTS ledger (id int PRIMARY KEY, at timestamptz DEFAULT now())")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            sent = time.time()
            try:
                self.cluster.psql(f"INSERT INTO ledger (id) VALUES ({n})")
            except Exception:
                return  # the server went away (the crash)
            self.rows.append((n, sent, time.time()))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def expect(self, target: float) -> tuple[set[int], set[int]]:
        """(ids that must be there, ids that must not) after a restore to ``target`` (epoch seconds)."""
        must = {i for i, _sent, ack in self.rows if ack < target}
        never = {i for i, sent, _ack in self.rows if sent > target}
        return must, never


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def restored_psql(sock: Path, port: int, bindir: str, sql: str) -> str:
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", f"{bindir}/psql", "-X", "-At", "-h", str(sock), "-p", str(port),
         "-U", "postgres", "-d", "postgres", "-c", sql],
        cwd="/", capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def stop_restored(datadir: Path, bindir: str) -> None:
    if (datadir / "postmaster.pid").exists():
        subprocess.run(
            ["runuser", "-u", "postgres", "--", f"{bindir}/pg_ctl", "-D", str(datadir), "-m", "immediate", "-w", "stop"],
            cwd="/", capture_output=True, check=False,
        )  # fmt: skip


def ledger_ids(sock: Path, port: int, bindir: str) -> set[int]:
    out = restored_psql(sock, port, bindir, "SELECT id FROM ledger")
    return {int(x) for x in out.split()} if out else set()


def pitr_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
