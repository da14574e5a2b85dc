"""dbkeeper cleanup on real PostgreSQL servers: what a killed restore leaves is found and dropped; what holds a
database's data, or what a running restore uses, never is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import cli, cli_json
from pg import PASSWORD, Cluster, PgDb
from pgutil import databases


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "DBKEEPER_STORE", "DBKEEPER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    return tmp_path


def _wait_for(cluster: Cluster, mark: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [d for d in databases(cluster) if mark in d]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no database with {mark} appeared")


def test_a_killed_restore_leaves_a_temporary_database_that_cleanup_drops(
    pgdb: PgDb, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, name = pgdb
    cluster.psql("CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 3000000) g", db=name)
    assert cli(capsys, "backup", pgdb.url, "--name", "big")[0] == 0
    target = f"{name}_r"
    restore = subprocess.Popen(
        [sys.executable, "-m", "dbkeeper", "restore", "latest", cluster.url(target), "--jobs", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    temp = _wait_for(cluster, "_dbkeeper_tmp_")
    # While it loads, the temporary database is in use: never dropped, whatever --older-than says. (Waited for
    # with --dry-run: between its CREATE DATABASE and its loader's connection, only the age protects it.)
    deadline = time.monotonic() + 30
    while "session" not in (out := cli(capsys, "cleanup", "--server", cluster.url(), "--dry-run")[1]):
        assert time.monotonic() < deadline and restore.poll() is None, out
    out = cli(capsys, "cleanup", "--server", cluster.url(), "--older-than", "0s")[1]
    assert f"keep         temporary database {temp}" in out and "a restore is running" in out
    assert temp in databases(cluster) and restore.poll() is None
    os.kill(restore.pid, signal.SIGKILL)
    restore.wait()
    deadline = time.monotonic() + 30  # the loader notices its parent is gone, and its session ends
    while True:
        code, doc = cli_json(capsys, "cleanup", "--server", cluster.url(), "--dry-run")
        [found] = [lo for lo in doc["leftovers"] if lo["name"] == temp]
        if "session" not in found["why"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert found["kind"] == "temporary database" and found["action"] == "keep"  # younger than an hour
    code, out, _ = cli(capsys, "cleanup", "--server", cluster.url(), "--older-than", "0s")
    assert code == 0 and f"removed      temporary database {temp}" in out
    assert temp not in databases(cluster) and target not in databases(cluster)
    assert name in databases(cluster)


def test_a_database_renamed_aside_is_reported_with_the_way_back_and_never_dropped(
    pg15: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    aside = "shop_dbkeeper_old_0badc0de"
    pg15.create_db(aside)
    try:
        server = pg15.url().rsplit("/", 1)[0]  # the server alone: postgresql://user@host:port
        code, out, _ = cli(capsys, "cleanup", "--server", server, "--older-than", "0s")
        assert code == 0
        assert f"keep         replaced database {aside}" in out
        assert f'ALTER DATABASE "{aside}" RENAME TO "shop"' in out  # the target is gone: this is its only copy
        pg15.create_db("shop")  # with the target back, it is the old copy a finished swap left
        try:
            assert "the old copy of shop; drop it when sure" in cli(capsys, "cleanup", "--server", server)[1]
        finally:
            pg15.drop_db("shop")
        assert aside in databases(pg15)
    finally:
        pg15.drop_db(aside)


def test_an_unreachable_server_is_an_error_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = cli(capsys, "cleanup", "--server", "postgresql://postgres@127.0.0.1:1/postgres")
    assert code == 1 and "cannot reach PostgreSQL at 127.0.0.1:1" in err and "Traceback" not in err
