"""Restore to a time on real clusters: a ledger of acknowledged commits, a base backup, pgbench load, a crash,
then restores to random times checked against the ledger; and every refusal that must come before anything is
unpacked (a target before the backup's end, past the archive's end, a deleted middle segment)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import _pg15_bindir, _pg17_bindir
from pitr_harness import Archiving, Ledger, iso, ledger_ids, restored_psql, shared_dir, stop_restored

pytestmark = pytest.mark.slow


def _bindir(major: int) -> Path:
    found = _pg15_bindir() if major == 15 else _pg17_bindir()
    assert found is not None, "PostgreSQL 17 binaries missing: run scripts/install-test-deps"
    return found


@pytest.fixture
def s3_for_server(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """S3 variables the server's OS user can use too (root's aws config files live where it cannot read)."""
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    return s3_env


def _store(kind: str, request: pytest.FixtureRequest) -> tuple[str, dict[str, str] | None]:
    if kind == "local":
        return str(shared_dir("dbkeeper-pitr-store-")), None
    env = request.getfixturevalue("s3_for_server")
    return request.getfixturevalue("s3_store_url"), env


def _pgbench(a: Archiving, *args: str) -> None:
    done = subprocess.run(
        [a.cluster.tool("pgbench"), *args, "postgres"], env=a.cluster.env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def work() -> Iterator[Path]:
    d = shared_dir("dbkeeper-pitr-work-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _restore_checked(a: Archiving, ledger: Ledger, target: float, work: Path, name: str) -> dict[str, object]:
    datadir, sock = work / name, work / f"{name}-sock"
    sock.mkdir()
    sock.chmod(0o777)
    done = a.restore(datadir, "--to-time", iso(target), "--action", "pause", sock=sock)
    try:
        assert done.returncode == 0, done.stderr + done.stdout
        result = json.loads(done.stdout)
        ids = ledger_ids(sock, 5432, a.pg_bin)
        must, never = ledger.expect(target)
        assert must <= ids, f"acknowledged before {iso(target)} but missing: {sorted(must - ids)[:10]}"
        assert not (never & ids), f"sent after {iso(target)} but present: {sorted(never & ids)[:10]}"
        assert restored_psql(sock, 5432, a.pg_bin, "SELECT pg_is_wal_replay_paused()") == "t"
        return result
    finally:
        stop_restored(datadir, a.pg_bin)
        shutil.rmtree(datadir, ignore_errors=True)


@pytest.mark.parametrize(("major", "store_kind"), [(15, "local"), (17, "s3")])
def test_restore_to_random_times_after_a_crash(
    major: int, store_kind: str, request: pytest.FixtureRequest, work: Path
) -> None:
    store, aws = _store(store_kind, request)
    a = Archiving.start(_bindir(major), store, aws=aws)
    try:
        ledger = Ledger(a.cluster).start()
        time.sleep(1.5)
        bb = a.basebackup()["backup"]
        _pgbench(a, "-i", "-s", "1", "-q")
        _pgbench(a, "-c", "2", "-T", "3")
        time.sleep(2)
        crashed = time.time()
        a.crash()
        ledger.stop()
    except BaseException:
        a.stop()
        raise
    try:
        stop = datetime_epoch(bb["stop_time"])
        start = datetime_epoch(bb["start_time"])
        rng = random.Random()
        for n in range(2):
            target = rng.uniform(stop + 0.3, crashed - 3.0)
            result = _restore_checked(a, ledger, target, work, f"t{n}")
            assert result["backup"] == bb["id"]
            assert result["reached_lsn"] and result["rto_s"] > 0 and result["replay_rate_bytes_per_s"] >= 0

        # A target before the backup's end: refused before anything is written.
        early = work / "early"
        done = a.restore(early, "--to-time", iso(start - 1))
        assert done.returncode == 1 and "before the end of every base backup" in done.stderr, done.stderr
        assert not early.exists()

        # Past the archive's end (the crash lost what was not archived yet).
        while time.time() < crashed + 2:
            time.sleep(0.2)
        late = work / "late"
        done = a.restore(late, "--to-time", iso(crashed + 1.5))
        assert done.returncode == 1 and "past the archive's end" in done.stderr, done.stderr
        assert not late.exists()
    finally:
        a.stop()


def datetime_epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_deleted_middle_segment_is_named_before_anything_is_unpacked(work: Path) -> None:
    store = shared_dir("dbkeeper-pitr-store-")
    a = Archiving.start(_bindir(15), str(store))
    try:
        a.cluster.psql("CREATE TABLE t (x int)")
        bb = a.basebackup()["backup"]
        for _ in range(4):
            a.cluster.psql("INSERT INTO t SELECT generate_series(1, 1000)")
            a.switch_wal()
        time.sleep(3)
        segs = sorted(p for p in store.rglob("0000000100000000000000*") if ".backup" not in p.name)
        stop = bb["stop_segment"]
        after = [p for p in segs if p.name[:24] > stop]
        assert len(after) >= 3, [p.name for p in segs]
        victim = after[1]
        victim.unlink()
        datadir = work / "gap"
        done = a.restore(datadir, "--to-latest")
        assert done.returncode == 1, done.stdout
        assert f"WAL segment {victim.name[:24]} is missing from the archive" in done.stderr
        assert "nothing was restored" in done.stderr
        assert not datadir.exists()
    finally:
        a.stop()
        shutil.rmtree(store, ignore_errors=True)
