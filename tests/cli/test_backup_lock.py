"""dbkeeper backup holds a lock per source: a second run of the same source fails at once and writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import backup_files, hold_lock, make_sqlite_app, run_dbkeeper, wait_for_lock
from pg import PgDb
from pgutil import TableLock


def test_backup_fails_fast_while_the_source_is_locked_and_works_once_the_holder_dies(tmp_path: Path) -> None:
    make_sqlite_app(tmp_path / "app.db", users=10, sessions=10)
    holder = hold_lock(f"sqlite:///{tmp_path}/app.db")
    try:
        t0 = time.monotonic()
        result = run_dbkeeper("backup", "sqlite:///app.db", cwd=tmp_path, timeout=60)
        assert time.monotonic() - t0 < 10
        assert result.returncode == 1
        first, hint = result.stderr.splitlines()
        assert first.startswith(
            f"dbkeeper: error: another dbkeeper backup of sqlite:///app.db is running (pid {holder.pid}"
        )
        assert hint.startswith("  Try: wait for it to finish")
        assert "Traceback" not in result.stderr
        assert backup_files(tmp_path / "backups") == []
    finally:
        holder.kill()  # SIGKILL: the kernel drops its lock
        holder.wait()
    again = run_dbkeeper("backup", "sqlite:///app.db", cwd=tmp_path, timeout=60)
    assert again.returncode == 0, again.stderr
    assert len(backup_files(tmp_path / "backups")) == 3


def test_other_sources_still_run_when_one_is_locked(tmp_path: Path) -> None:
    make_sqlite_app(tmp_path / "a.db", users=10, sessions=10)
    make_sqlite_app(tmp_path / "b.db", users=10, sessions=10)
    holder = hold_lock(f"sqlite:///{tmp_path}/a.db")
    try:
        result = run_dbkeeper("backup", "sqlite:///a.db", "sqlite:///b.db", "--json", cwd=tmp_path, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert [(b["source"], b["ok"]) for b in doc["backups"]] == [("sqlite:///a.db", False), ("sqlite:///b.db", True)]
    assert "another dbkeeper backup of sqlite:///a.db is running" in doc["backups"][0]["error"]
    assert [f for f in backup_files(tmp_path / "backups") if f.startswith("a_")] == []


def test_two_real_backups_of_one_slow_postgres_source(pgdb: PgDb, tmp_path: Path) -> None:
    """The first backup waits on a table lock (a slow source); a second one, as cron and a manual run would,
    fails at once naming the first; the first then completes alone."""
    cluster, name = pgdb
    cluster.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g", db=name)
    env = cluster.env()
    with TableLock(cluster, name, "t"):
        first = subprocess.Popen(
            [sys.executable, "-m", "dbkeeper", "backup", pgdb.url, "--json"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for_lock(first.pid)
            second = run_dbkeeper("backup", cluster.url(name, user="postgres"), cwd=tmp_path, env=env, timeout=60)
            assert second.returncode == 1
            assert (
                f"another dbkeeper backup of {cluster.url(name)} is running (pid {first.pid}, since " in second.stderr
            )
            assert first.poll() is None  # still waiting on the table
        except BaseException:
            first.kill()
            raise
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert json.loads(out)["ok"]
    assert len(backup_files(tmp_path / "backups")) == 3


@pytest.mark.parametrize("value", ["-1", "inf", "nan", "soon"])
def test_a_stall_timeout_that_is_no_duration_is_a_usage_error(tmp_path: Path, value: str) -> None:
    make_sqlite_app(tmp_path / "app.db", users=1, sessions=0)
    done = run_dbkeeper("backup", str(tmp_path / "app.db"), "--stall-timeout", value, "--store", str(tmp_path / "b"))
    assert (
        done.returncode == 2 and "argument --stall-timeout: invalid" in done.stderr and "Traceback" not in done.stderr
    )
    assert not (tmp_path / "b").exists()
