"""Restore to a time on real clusters: a ledger of acknowledged commits, a base backup, pgbench load, a crash,
then restores to random times checked against the ledger; and every refusal that must come before anything is
unpacked (a target before the backup's end, past the archive's end, a deleted middle segment)."""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from archiving import ArchivingCluster, archiving_cluster
from conftest import _pg15_bindir, _pg17_bindir
from pitr_harness import (
    PITR_SETTINGS,
    Ledger,
    basebackup,
    crash,
    iso,
    ledger_ids,
    pgbench,
    restore,
    restored_psql,
    shared_dir,
    stop_restored,
)

pytestmark = pytest.mark.slow


def bindir(major: int) -> Path:
    found = _pg15_bindir() if major == 15 else _pg17_bindir()
    assert found is not None, "PostgreSQL 17 binaries missing: run scripts/install-test-deps"
    return found


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def work() -> Iterator[Path]:
    d = shared_dir("dbkeeper-pitr-work-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def server_s3_env(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The S3 variables, without root's config files (the server's OS user cannot read them)."""
    env = {k: v for k, v in s3_env.items() if k not in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")}
    env.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def restore_checked(ac: ArchivingCluster, ledger: Ledger, target: float, work: Path, name: str) -> dict[str, object]:
    """Restore to ``target`` paused there, and hold the restored ledger against the acknowledgements."""
    datadir, sock = work / name, work / f"{name}-sock"
    sock.mkdir()
    sock.chmod(0o777)
    done = restore(ac, datadir, "--to-time", iso(target), "--action", "pause", sock=sock)
    try:
        assert done.returncode == 0, done.stderr + done.stdout
        result: dict[str, object] = json.loads(done.stdout)
        ids = ledger_ids(sock, ac.cluster.bindir)
        must, never = ledger.expect(target)
        assert must, "the ledger has no commit acknowledged before the target: the test proves nothing"
        assert must <= ids, f"acknowledged before {iso(target)} but missing: {sorted(must - ids)[:10]}"
        assert not (never & ids), f"sent after {iso(target)} but present: {sorted(never & ids)[:10]}"
        assert restored_psql(sock, ac.cluster.bindir, "SELECT pg_is_wal_replay_paused()") == "t"
        return result
    finally:
        stop_restored(datadir, ac.cluster.bindir)
        shutil.rmtree(datadir, ignore_errors=True)


@pytest.mark.parametrize(("major", "kind"), [(15, "local"), (17, "s3")])
def test_restores_to_random_times_after_a_crash_hold_exactly_the_acknowledged_commits(
    major: int, kind: str, request: pytest.FixtureRequest, work: Path
) -> None:
    store, env = None, None
    if kind == "s3":
        env = server_s3_env(request.getfixturevalue("s3_env"), request.getfixturevalue("monkeypatch"))
        store = request.getfixturevalue("s3_store_url")
    with archiving_cluster(bindir(major), store=store, env=env, settings=PITR_SETTINGS) as ac:
        ledger = Ledger(ac.cluster).start()
        try:
            time.sleep(1.5)
            bb = basebackup(ac)
            pgbench(ac, "-i", "-s", "1", "-q")
            pgbench(ac, "-c", "2", "-T", "3")
            time.sleep(1.5)
            # The archive's end: what a target may reach (S3 pushes without the daemon lag behind the load).
            switched = time.time()
            ac.wait_archived(ac.switch(), timeout=180)
            time.sleep(1)
        finally:
            crashed = time.time()
            crash(ac)
            ledger.stop()
        assert bb["kind"] == "full" and bb["wal_verified"] is True
        stop, start = epoch(bb["stop_time"]), epoch(bb["start_time"])
        rng = random.Random()
        for n in range(2):
            target = rng.uniform(stop + 0.3, switched - 0.5)
            result = restore_checked(ac, ledger, target, work, f"t{n}")
            assert result["backup"] == bb["id"]
            assert result["reached_lsn"] and result["reached_time"]
            assert float(result["rto_s"]) > 0  # type: ignore[arg-type]

        # A target before the backup's end: refused before anything is written.
        early = work / "early"
        done = restore(ac, early, "--to-time", iso(start - 1))
        assert done.returncode == 1 and "before the end of every base backup" in done.stderr, done.stderr
        assert not early.exists()

        # Past the archive's end: the crash lost what was not archived yet.
        while time.time() < crashed + 2.5:
            time.sleep(0.2)
        late = work / "late"
        done = restore(ac, late, "--to-time", iso(crashed + 2))
        assert done.returncode == 1 and "past the archive's end" in done.stderr, done.stderr
        assert not late.exists()


def test_a_deleted_middle_segment_is_named_before_anything_is_unpacked(work: Path) -> None:
    with archiving_cluster(bindir(15), settings=PITR_SETTINGS) as ac:
        ac.cluster.psql("CREATE TABLE t (x int)")
        bb = basebackup(ac)
        closed = ""
        for _ in range(4):
            ac.cluster.psql("INSERT INTO t SELECT generate_series(1, 1000)")
            closed = ac.switch()
        ac.wait_archived(closed)
        store = Path(ac.store)
        segments = sorted(p for p in store.rglob("*") if p.is_file() and len(p.name) > 24 and p.name[24] == "-")
        after = [p for p in segments if p.name[:24] > bb["stop_segment"]]
        assert len(after) >= 3, [p.name for p in segments]
        victim = after[1]
        victim.unlink()
        datadir = work / "gap"
        done = restore(ac, datadir, "--to-latest")
        assert done.returncode == 1, done.stdout
        assert f"WAL segment {victim.name[:24]} is missing from the archive" in done.stderr, done.stderr
        assert "nothing was restored" in done.stderr
        assert not datadir.exists()
