"""docs/PITR.md, run: every ``dbkeeper …`` line of the sh blocks in its base-backup sections (between the
``base: begin``/``base: end`` markers), in document order, against a real PostgreSQL 17 cluster archiving into a
directory store. The only differences between the doc and what runs are ``SUBSTITUTIONS`` (the doc's host, store,
source, directories and time) and ``HERE_ONLY``: options this test machine needs (the PostgreSQL 17 binaries are
not on the PATH, and the server's OS user runs dbkeeper from a copy of this checkout)."""

from __future__ import annotations

import re
import shlex
import shutil
import time
from pathlib import Path

import pytest

from archiving import archiving_cluster
from conftest import _pg17_bindir
from pitr_harness import PITR_SETTINGS, Ledger, dbk, iso, restored_psql, shared_dir, stop_restored

DOC = Path(__file__).resolve().parent.parent / "docs" / "PITR.md"
DOC_TIME = "2026-11-30T02:57:30Z"

pytestmark = pytest.mark.slow


def doc_commands() -> list[str]:
    text = DOC.read_text()
    part = text[text.index("<!-- base: begin -->") : text.index("<!-- base: end -->")]
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", part, re.S):
        lines += [line.strip() for line in block.splitlines() if line.strip().startswith("dbkeeper ")]
    return lines


def test_the_doc_shows_the_commands() -> None:
    commands = doc_commands()
    assert [c.split()[1] for c in commands] == ["basebackup", "basebackup", "prune", "restore"], commands


def test_every_base_backup_command_in_the_doc_runs() -> None:
    bindir = _pg17_bindir()
    assert bindir is not None
    work = shared_dir("dbkeeper-pitr-doc-")
    try:
        with archiving_cluster(bindir, settings={**PITR_SETTINGS, "summarize_wal": "on"}) as ac:
            ledger = Ledger(ac.cluster).start()
            subs = {
                "postgresql://postgres@db1:5432/postgres": ac.cluster.url(),
                "/srv/backups": ac.store,
                "--source casino-pg": "--source main",
                "/var/lib/postgresql/restored": str(work / "restored"),
                "/run/restored": str(work / "sock"),
            }
            (work / "sock").mkdir()
            (work / "sock").chmod(0o777)
            here_only = {
                "basebackup": ["--pg-bin", str(bindir)],
                "restore": ["--pg-bin", str(bindir), "--wal-fetch-command", ac.command],
            }
            commands = doc_commands()
            try:
                for line in commands:
                    if line.startswith("dbkeeper restore"):
                        time.sleep(2)
                        target = time.time() - 1
                        time.sleep(1.5)
                        ac.wait_archived(ac.switch())
                        line = line.replace(DOC_TIME, iso(target))
                    for old, new in subs.items():
                        line = line.replace(old, new)
                    argv = shlex.split(line)[1:]
                    done = dbk(ac, *argv, *here_only.get(argv[0], []))
                    assert done.returncode == 0, f"{line}\n{done.stderr}{done.stdout}"
                    if argv[0] == "prune":
                        assert "point-in-time recovery, main archive" in done.stdout, done.stdout
                        assert "keep    base backup" in done.stdout and "needed by base backup" in done.stdout
                    if argv[0] == "restore":
                        assert "paused at the target" in done.stdout, done.stdout
                        paused = "SELECT pg_is_wal_replay_paused()"
                        assert restored_psql(work / "sock", bindir, paused) == "t"
            finally:
                ledger.stop()
                stop_restored(work / "restored", bindir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
