"""wal-daemon with real clusters: it pushes ahead, wal-push answers from its spool without loading the store's
code, a daemon killed mid-push loses nothing, and wal-fetch serves what it prefetched by a rename."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import time
from pathlib import Path

import pytest

from archiving import SOURCE, ArchivingCluster, archiving_cluster
from conftest import _pg15_bindir, _pg17_bindir
from dbkeeper.pitr import walfile
from dbkeeper.pitr.archive import WalArchive, cluster_of
from dbkeeper.storage import open_store
from fixtures_s3 import s3_bucket, s3_client, s3_env  # noqa: F401
from pg import _RunAs

HEAVY = ("boto3", "botocore", "zstandard", "pyrage", "cryptography")


def _bindir(major: int) -> Path:
    found = _pg15_bindir() if major == 15 else _pg17_bindir()
    assert found is not None
    return found


def _aid(ac: ArchivingCluster) -> str:
    cluster = cluster_of(ac.cluster.datadir)
    assert cluster is not None
    return cluster.archive_id


def _spool(ac: ArchivingCluster) -> Path:
    return ac.state / "wal" / _aid(ac)


def _wait(predicate, timeout: float, what: str, ac: ArchivingCluster) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s\n{ac.daemon_log()}\n{ac.cluster.server_log()[-3000:]}")
        time.sleep(0.05)


def _ready(ac: ArchivingCluster) -> list[str]:
    status = ac.cluster.datadir / "pg_wal" / "archive_status"
    return sorted(p.name[: -len(".ready")] for p in status.glob("*.ready"))


def _switches(ac: ArchivingCluster, n: int) -> list[str]:
    return ac.switches(n)


def _state(ac: ArchivingCluster) -> dict:  # type: ignore[type-arg]
    return json.loads((_spool(ac) / "daemon.json").read_text())


def _push_as_server(ac: ArchivingCluster, path: str, *extra: str, env: str = "") -> subprocess.CompletedProcess[str]:
    argv = ac.server_argv("wal-push", path, *extra)
    if env:
        argv[-1] = argv[-1].replace("exec env ", f"exec env {env} ", 1)
    return subprocess.run(argv, capture_output=True, text=True)


@pytest.mark.parametrize("major", [15, 17])
def test_the_daemon_pushes_ahead_and_wal_push_answers_from_its_spool(major: int) -> None:
    """archive_command is off (PostgreSQL queues .ready files and calls nothing): the daemon alone pushes and
    acknowledges them, never touching .ready; then wal-push, run as the server runs it, answers each from the
    spool without importing boto3 or zstandard, in well under 50 ms."""
    with archiving_cluster(_bindir(major), settings={"archive_command": "''"}) as ac:
        closed = _switches(ac, 4)
        assert set(closed) <= set(_ready(ac))
        with ac.daemon():
            _wait(lambda: all((_spool(ac) / "pushed" / f).exists() for f in closed), 60, "acknowledged", ac)
            assert set(closed) <= set(_ready(ac)), "the daemon must never rename .ready files"
            _wait(lambda: _state(ac)["pushed"] >= 4, 10, "the state file says so", ac)
            assert _state(ac)["backlog"]["files"] >= 4
            arch = WalArchive(open_store(ac.store), SOURCE)
            assert set(closed) <= {o.name.text for o in arch.files(_aid(ac))}
            ack = (_spool(ac) / "pushed" / closed[0]).read_text().splitlines()
            assert ack[1:3] == [closed[0], str(16 << 20)] and len(ack[3]) == 64 and ack[5] == SOURCE
            # The fast path: nothing heavy imported, and the acknowledgement is used up.
            answered = _push_as_server(ac, f"pg_wal/{closed[0]}", env="PYTHONPROFILEIMPORTTIME=1")
            assert answered.returncode == 0, answered.stderr
            imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in answered.stderr.splitlines()}
            assert not imported & set(HEAVY), imported & set(HEAVY)
            assert "dbkeeper.cli.common" not in answered.stderr
            assert not (_spool(ac) / "pushed" / closed[0]).exists()
            # Its wall time, as PostgreSQL would see it (the shell and runuser included).
            times = []
            for f in closed[1:]:
                ack_file = _spool(ac) / "pushed" / f
                saved = ack_file.read_bytes()
                for _ in range(10):
                    ack_file.write_bytes(saved)
                    t0 = time.perf_counter()
                    done = _push_as_server(ac, f"pg_wal/{f}")
                    times.append(time.perf_counter() - t0)
                    assert done.returncode == 0, done.stderr
                    assert not ack_file.exists()
            median, top = statistics.median(times) * 1000, max(times) * 1000
            print(f"wal-push from the spool: median {median:.1f} ms, max {top:.1f} ms")
            assert statistics.median(times) < 0.25  # a loose bound on a shared machine; bench/wal_push.py measures


def test_an_acknowledgement_for_other_bytes_is_not_an_answer(tmp_path: Path) -> None:
    """A file under an acknowledged name but with other bytes (a restored data directory reusing names) is pushed
    for real, and refused as a conflict; an acknowledgement for another store is ignored."""
    with archiving_cluster(_bindir(15), settings={"archive_command": "''"}) as ac:
        closed = _switches(ac, 2)
        with ac.daemon():
            _wait(lambda: all((_spool(ac) / "pushed" / f).exists() for f in closed), 60, "acknowledged", ac)
            original = ac.cluster.datadir / "pg_wal" / closed[0]
            forged_dir = ac.home / "forged"
            forged_dir.mkdir(mode=0o755)
            data = bytearray(original.read_bytes())
            data[9000] ^= 0x01
            (forged_dir / closed[0]).write_bytes(bytes(data))
            os.chmod(forged_dir / closed[0], 0o644)
            result = _push_as_server(ac, str(forged_dir / closed[0]))
            assert result.returncode == 1 and "already archived with other contents" in result.stderr
            assert (_spool(ac) / "pushed" / closed[0]).exists()
            # Another store: not this acknowledgement's.
            other = ac.home / "other-store"
            other.mkdir(mode=0o700)
            _RunAs.detect().own(other)
            result = _push_as_server(ac, f"pg_wal/{closed[1]}", "--store", str(other), "--json")
            assert result.returncode == 0 and '"duplicate": false' in result.stdout


def test_without_a_daemon_wal_push_pushes_itself_at_once() -> None:
    with archiving_cluster(_bindir(15)) as ac:
        t0 = time.monotonic()
        closed = ac.switch()
        ac.wait_archived(closed)
        assert time.monotonic() - t0 < 20
        assert not any((ac.state / "wal").glob("*/daemon.lock"))


@pytest.mark.parametrize("store_kind", ["local", "s3"])
def test_kill_9_mid_push_loses_nothing(store_kind: str, request: pytest.FixtureRequest) -> None:
    """The daemon is killed (SIGKILL) again and again while it pushes under load; PostgreSQL keeps calling
    wal-push, which pushes itself when no daemon runs. Afterwards every segment is archived exactly once, with the
    bytes PostgreSQL wrote, and wal-verify --deep finds nothing wrong."""
    env: dict[str, str] = {}
    store = None
    if store_kind == "s3":
        s3_env = request.getfixturevalue("s3_env")
        bucket = request.getfixturevalue("s3_bucket")
        env = dict(s3_env)
        aws_config = Path(env["AWS_CONFIG_FILE"])
        for p in (aws_config.parent, aws_config):
            p.chmod(p.stat().st_mode | 0o055)
        store = f"s3://{bucket}/kill9"
    with archiving_cluster(_bindir(15), store=store, env=env, settings={"archive_timeout": "0"}) as ac:
        ac.cluster.psql("CREATE TABLE load (id serial, pad text)")
        kills = 0
        for _round in range(4):
            with ac.daemon() as proc:
                ac.cluster.psql("INSERT INTO load (pad) SELECT repeat('x', 500) FROM generate_series(1, 60000)")
                ac.cluster.psql("SELECT pg_switch_wal()")
                time.sleep(0.3 + 0.2 * _round)
                pid = ac.daemon_pid()
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                kills += 1
                proc.wait(30)
            (_spool(ac) / "daemon.json").unlink(missing_ok=True)
        last = ac.switch()
        ac.wait_archived(last, timeout=180, fail_fast=False)
        arch = WalArchive(open_store(ac.store), SOURCE)
        aid = _aid(ac)
        names = [o.name.text for o in arch.files(aid) if o.name.kind == "segment"]
        assert len(names) == len(set(names)), "a segment stored twice"
        verify = subprocess.run(ac.dbkeeper_argv("wal-verify", "--deep", "--json"), capture_output=True, text=True)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        doc = json.loads(verify.stdout)
        assert doc["archives"][0]["lost"] == [] and doc["archives"][0]["conflicts"] == []
        assert kills == 4


def test_prefetch_serves_wal_fetch_by_a_rename(tmp_path: Path) -> None:
    """With --prefetch, after wal-fetch asked for segment N the daemon fetches N+1… (checked) into the spool, and
    wal-fetch serves them without loading the store's code; the bytes are the ones wal-push hashed (PostgreSQL may
    have recycled its own copy by then)."""
    with archiving_cluster(_bindir(15)) as ac:
        _switches(ac, 6)
        first = ac.current_segment()
        while ac.switch() <= first:
            pass
        closed = [ac.switch() for _ in range(6)]
        ac.wait_archived(closed[-1])
        base = walfile.WalName.parse(closed[0]).segno(16 << 20)
        names = [walfile.segment_name(1, base + i, 16 << 20) for i in range(6)]
        while ac.switch() <= names[-1]:
            pass
        ac.wait_archived(names[-1])
        arch = WalArchive(open_store(ac.store), SOURCE)
        archived = {o.name.text: o.sha256 for o in arch.files(_aid(ac))}
        assert set(names) <= set(archived), (names, sorted(archived))
        with ac.daemon("--prefetch", "3"):
            dest = ac.home / "restore"
            dest.mkdir()
            _RunAs.detect().own(dest)
            fetched = subprocess.run(
                ac.server_argv("wal-fetch", names[0], str(dest / "X")), capture_output=True, text=True
            )
            assert fetched.returncode == 0, fetched.stderr
            assert hashlib.sha256((dest / "X").read_bytes()).hexdigest() == archived[names[0]]
            prefetch = _spool(ac) / "prefetch"
            _wait(lambda: all((prefetch / f).exists() for f in names[1:4]), 60, "prefetched", ac)
            assert not (prefetch / names[4]).exists(), "no more than --prefetch files ahead"
            argv = ac.server_argv("wal-fetch", names[1], str(dest / "Y"))
            argv[-1] = argv[-1].replace("exec env ", "exec env PYTHONPROFILEIMPORTTIME=1 ", 1)
            served = subprocess.run(argv, capture_output=True, text=True)
            assert served.returncode == 0, served.stderr
            assert "zstandard" not in served.stderr and "boto3" not in served.stderr
            assert hashlib.sha256((dest / "Y").read_bytes()).hexdigest() == archived[names[1]]
            assert not (prefetch / names[1]).exists()
            _wait(lambda: (prefetch / names[4]).exists(), 60, "the window moved on", ac)
            # A file not archived is still exit 1, and nothing at DEST.
            missing = subprocess.run(
                ac.server_argv("wal-fetch", "00000005.history", str(dest / "Z")), capture_output=True, text=True
            )
            assert missing.returncode == 1 and not (dest / "Z").exists()
        shutil.rmtree(ac.home / "restore")
