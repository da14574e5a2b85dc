"""restore --drop-existing under a real signal at every step of the swap: the target is always there, always
accepts connections, and holds either its old data or the backup's, never nothing; what SIGKILL leaves,
``dbkeeper cleanup`` settles.

The signal comes from a ``psql`` on a ``--pg-bin`` directory that signals dbkeeper (its parent) just before it
runs the statement under test: a real signal at a real point. Under SIGKILL the statement does not run (its
sender is gone); under SIGINT and SIGTERM it runs as it would have.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pg import PASSWORD, Cluster, PgDb
from pgutil import databases

STEPS = {
    "carry over": "pg_get_userbyid",
    "lock": "ALLOW_CONNECTIONS false",
    "end sessions": "pg_terminate_backend",
    "swap": "RENAME TO",
    "drop old": "DROP DATABASE",
}
HELD = {"lock", "end sessions", "swap", "drop old"}  # inside the swap, where SIGINT and SIGTERM wait

_PSQL = """#!/bin/bash
for arg in "$@"; do
    if [[ -n "$SIGNAL_AT" && "$arg" == *"$SIGNAL_AT"* && ! -e "$SIGNAL_SENT" ]]; then
        : > "$SIGNAL_SENT"
        kill -s "$SIGNAL" "$PPID"
        [[ "$SIGNAL" == KILL ]] && exit 1
        sleep 0.2
    fi
done
exec {real} "$@"
"""


@pytest.fixture
def pg_bin(tmp_path: Path, pg15: Cluster) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "psql").write_text(_PSQL.format(real=pg15.tool("psql")))
    (folder / "psql").chmod(0o755)
    return folder


def _count(cluster: Cluster, db: str) -> int:
    return int(cluster.psql("SELECT count(*) FROM t", db=db).strip())


def _allows_connections(cluster: Cluster, db: str) -> bool:
    return cluster.psql(f"SELECT datallowconn FROM pg_database WHERE datname = '{db}'").strip() == "t"


@pytest.mark.parametrize("sig", ["INT", "TERM", "KILL"])
@pytest.mark.parametrize("step", list(STEPS))
def test_a_signal_at_each_step_of_the_swap_never_loses_the_target(
    pgdb: PgDb, pg_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str, sig: str
) -> None:
    cluster, name = pgdb
    monkeypatch.chdir(tmp_path)
    cluster.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 20) g", db=name)
    env = {**os.environ, "PGPASSWORD": PASSWORD}
    assert subprocess.run([sys.executable, "-m", "dbkeeper", "backup", pgdb.url], env=env).returncode == 0
    target = f"tgt_{name[-8:]}"  # short: the names dbkeeper derives from it keep its first 40 characters
    cluster.create_db(target)
    cluster.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 10) g", db=target)
    try:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "dbkeeper", "restore", "latest", cluster.url(target), "--drop-existing"),
                *("--pg-bin", str(pg_bin), "--jobs", "1"),
            ],
            env={**env, "SIGNAL": sig, "SIGNAL_AT": STEPS[step], "SIGNAL_SENT": str(tmp_path / "sent")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (tmp_path / "sent").exists(), "the step was never reached"
        assert "Traceback" not in done.stderr
        if sig == "KILL":
            assert done.returncode == -9
            cleaned = subprocess.run(
                [sys.executable, "-m", "dbkeeper", "cleanup", "--server", cluster.url(), "--older-than", "0s"],
                env=env,
                capture_output=True,
                text=True,
            )
            assert cleaned.returncode == 0, cleaned.stderr
        else:
            assert done.returncode == (130 if sig == "INT" else 143), done.stderr
        # Always there, always open, and either the old data or the backup's.
        assert target in databases(cluster) and _allows_connections(cluster, target)
        swapped = (sig != "KILL" and step in HELD) or (sig == "KILL" and step == "drop old")
        assert _count(cluster, target) == (20 if swapped else 10)
        left = {d for d in databases(cluster) if "_dbkeeper_" in d and d.startswith(target[:40])}
        if sig == "KILL" and step == "drop old":
            [old] = left  # the old copy, after a finished swap: reported, never dropped by cleanup
            assert "_dbkeeper_old_" in old and old in cleaned.stdout and f"the old copy of {target}" in cleaned.stdout
            cluster.drop_db(old)
        else:
            assert left == set()
    finally:
        cluster.drop_db(target)


_FAILING_PSQL = """#!/bin/bash
for arg in "$@"; do
    [[ "$arg" == *"DROP DATABASE IF EXISTS"* ]] && { echo "psql: error: server closed the connection" >&2; exit 2; }
done
if [[ " $* " == *" -f - "* ]]; then
    head -c 100 >/dev/null
    echo 'psql:<stdin>:1: ERROR:  relation "nowhere" does not exist' >&2
    exit 3
fi
exec {real} "$@"
"""


def test_a_failed_restore_says_its_cause_first_when_its_cleanup_fails_too(
    pgdb: PgDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, name = pgdb
    monkeypatch.chdir(tmp_path)
    cluster.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 20) g", db=name)
    env = {**os.environ, "PGPASSWORD": PASSWORD}
    assert subprocess.run([sys.executable, "-m", "dbkeeper", "backup", pgdb.url], env=env).returncode == 0
    folder = tmp_path / "failing"
    folder.mkdir()
    (folder / "psql").write_text(_FAILING_PSQL.replace("{real}", cluster.tool("psql")))
    (folder / "psql").chmod(0o755)
    target = f"tgt_{name[-8:]}"
    done = subprocess.run(
        [sys.executable, "-m", "dbkeeper", "restore", "latest", cluster.url(target), "--pg-bin", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    first, hint = done.stderr.splitlines()[:2]
    assert "does not exist" in first and "nowhere" in first  # the cause, not the failed cleanup
    assert "could not be removed" in hint and "dbkeeper cleanup" in hint
    left = [d for d in databases(cluster) if d.startswith(f"{target}_dbkeeper_tmp_")]
    assert len(left) == 1 and target not in databases(cluster)
    cleaned = subprocess.run(
        [sys.executable, "-m", "dbkeeper", "cleanup", "--server", cluster.url(), "--older-than", "0s"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert cleaned.returncode == 0 and left[0] not in databases(cluster)
