"""wal-verify's logic over real stores (a directory and moto S3) holding synthetic WAL: FOUND, DELAYED and LOST,
duplicates, the history chain, the base backup's start, --deep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dbkeeper.pitr import walfile
from dbkeeper.pitr.archive import Cluster, WalArchive
from dbkeeper.pitr.basebackup import BaseBackup
from dbkeeper.pitr.walverify import Server, verify
from fixtures_s3 import s3_bucket, s3_client, s3_env  # noqa: F401
from store_cases import StoreCase, make_case
from walgen import SEG, SYSID, history, segment, write

CLUSTER = Cluster(SYSID, 15)
AID = CLUSTER.archive_id
LATER = timedelta(hours=1)


@pytest.fixture(params=["local", "s3"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> StoreCase:
    return make_case(request.param, request, tmp_path / "store")


def name(tli: int, segno: int) -> str:
    return walfile.segment_name(tli, segno, SEG)


def push(arch: WalArchive, tmp_path: Path, *files: str, body: dict[str, bytes] | None = None) -> None:
    d = tmp_path / "pg_wal"
    d.mkdir(exist_ok=True)
    for f in files:
        data = (body or {})[f] if f.endswith(".history") else segment(f)
        arch.push(Path(write(d, f, data)), CLUSTER)


def obj(arch: WalArchive, file: str) -> str:
    return next(o.object for o in arch.files(AID) if o.name.text == file)


def test_a_whole_archive_is_ok(case: StoreCase, tmp_path: Path) -> None:
    arch = WalArchive(case.store, "main")
    push(arch, tmp_path, *(name(1, i) for i in range(1, 6)))
    r = verify(arch, AID, now=datetime.now(UTC))
    assert r.ok, r.problems
    assert [(t.timeline, t.first, t.last, t.found) for t in r.timelines] == [(1, name(1, 1), name(1, 5), 5)]
    assert r.start_from == "first archived segment" and r.newest is not None and r.newest.name.text == name(1, 5)
    assert r.window is None  # no base backup: no window, however much WAL there is


def test_a_hole_before_newer_segments_is_lost_unless_they_just_arrived(case: StoreCase, tmp_path: Path) -> None:
    arch = WalArchive(case.store, "main")
    push(arch, tmp_path, *(name(1, i) for i in range(1, 8)))
    case.store.delete(obj(arch, name(1, 3)))
    case.store.delete(obj(arch, name(1, 4)))
    # An hour later: nothing is on its way any more.
    r = verify(arch, AID, now=datetime.now(UTC) + LATER)
    assert r.lost == [name(1, 3), name(1, 4)] and not r.ok
    assert "LOST" in r.problems[0]
    # Just now: parallel uploads land out of order, so a hole behind fresh segments is DELAYED.
    r = verify(arch, AID, now=datetime.now(UTC))
    assert r.delayed == [name(1, 3), name(1, 4)] and r.ok
    assert verify(arch, AID, now=datetime.now(UTC), delay=timedelta(0)).lost == [name(1, 3), name(1, 4)]
    # Still .ready on the server: DELAYED however old.
    server = Server(1, 8, frozenset({name(1, 3), name(1, 4)}))
    r = verify(arch, AID, now=datetime.now(UTC) + LATER, server=server)
    assert r.delayed == [name(1, 3), name(1, 4)] and r.ok


def test_the_tail_up_to_the_servers_current_segment_is_delayed(case: StoreCase, tmp_path: Path) -> None:
    arch = WalArchive(case.store, "main")
    push(arch, tmp_path, *(name(1, i) for i in range(1, 4)))
    r = verify(arch, AID, now=datetime.now(UTC) + LATER, server=Server(1, 6))
    assert r.delayed == [name(1, 4), name(1, 5)] and r.ok
    assert r.timelines[0].last == name(1, 5)  # 6 is being written


def test_different_contents_under_one_name_is_a_problem(case: StoreCase, tmp_path: Path) -> None:
    arch = WalArchive(case.store, "main")
    push(arch, tmp_path, name(1, 1), name(1, 2))
    original = obj(arch, name(1, 2))
    other = original.replace(original.rsplit("-", 1)[1], "0" * 64 + ".zst")
    with case.store.open(original) as f:
        case.store.put(other, [f.read()])
    r = verify(arch, AID, now=datetime.now(UTC))
    assert r.conflicts == [name(1, 2)] and not r.ok


def test_history_chain(case: StoreCase, tmp_path: Path) -> None:
    arch = WalArchive(case.store, "main")
    push(arch, tmp_path, *(name(1, i) for i in range(1, 5)))
    # Timeline 2 from segment 3 on, without its history file: a problem.
    push(arch, tmp_path, name(2, 3), name(2, 4))
    r = verify(arch, AID, now=datetime.now(UTC) + LATER)
    assert any("no 00000002.history" in p for p in r.history_problems)
    # With it: timeline 2 starts at its switch point, so segments 1-2 of timeline 2 are not missing.
    h2 = history(1, walfile.format_lsn(3 * SEG + 100))
    push(arch, tmp_path, "00000002.history", body={"00000002.history": h2})
    r = verify(arch, AID, now=datetime.now(UTC) + LATER)
    assert r.ok, r.problems
    assert [(t.timeline, t.first) for t in r.timelines] == [(1, name(1, 1)), (2, name(2, 3))]
    assert r.highest_timeline == 2
    # A timeline 3 whose history does not continue timeline 2's.
    bad = history(2, walfile.format_lsn(4 * SEG + 10))  # lacks timeline 2's own line
    push(arch, tmp_path, "00000003.history", body={"00000003.history": bad})
    r = verify(arch, AID, now=datetime.now(UTC) + LATER)
    assert any("does not continue 00000002.history" in p for p in r.history_problems)
    # A server still on timeline 2 while the archive holds 3: someone else promoted.
    r = verify(arch, AID, now=datetime.now(UTC) + LATER, server=Server(2, 5))
    assert any("newer than the server's" in p for p in r.history_problems)


def test_the_range_starts_at_the_oldest_base_backup(case: StoreCase, tmp_path: Path) -> None:
    arch = WalArchive(case.store, "main")
    push(arch, tmp_path, name(1, 1), *(name(1, i) for i in range(4, 8)))
    assert verify(arch, AID, now=datetime.now(UTC) + LATER).lost == [name(1, 2), name(1, 3)]
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    doc = BaseBackup(
        id="20260101T000000Z-F", kind="full", parent=None, label="t", source_id="main", archive_id=AID,
        pg_version="15.18", pg_major=15, system_identifier=SYSID, wal_segment_size=SEG, timeline=1,
        start_lsn=4 * SEG + 40, stop_lsn=4 * SEG + 400, start_time=moment, stop_time=moment, created_at=moment,
        duration_s=1.0, wal_ranges=((1, 4 * SEG + 40, 4 * SEG + 400),), objects=(), manifest_checksum="0" * 64,
        compression="zstd", recipients=(), wal_verified=True,
    )  # fmt: skip
    case.store.put(f"{arch.base(AID)}/base/20260101T000000Z-F/backup.json", [doc.to_bytes()])
    r = verify(arch, AID, now=datetime.now(UTC) + LATER)
    assert r.ok and r.start == name(1, 4) and r.start_from == "base backup 20260101T000000Z-F"
    assert r.window is not None and r.window.start == datetime(2026, 1, 1, tzinfo=UTC)
    assert r.window.end == max(f.stored for f in arch.files(AID) if f.stored is not None)


def test_deep_reads_every_object_back(case: StoreCase, tmp_path: Path) -> None:
    arch = WalArchive(case.store, "main")
    push(arch, tmp_path, *(name(1, i) for i in range(1, 4)))
    assert verify(arch, AID, now=datetime.now(UTC), deep=True).ok
    damaged = obj(arch, name(1, 2))
    case.plant(damaged, b"not zstd at all")
    r = verify(arch, AID, now=datetime.now(UTC), deep=True)
    assert not r.ok and r.damaged and r.damaged[0].startswith(name(1, 2))
    assert verify(arch, AID, now=datetime.now(UTC)).ok  # without --deep, only names are looked at
