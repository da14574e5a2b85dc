"""Retention for PITR: base backups by the policy, WAL by what the kept base backups need, history always.

The hard case (pg_probackup#150): a kept base backup in the middle of the history needs the WAL between it and
the next one; removing "everything before the newest backup" would leave it unrestorable."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archiving import archiving_cluster
from conftest import _pg15_bindir
from dbkeeper.pitr.archive import ArchivedWal
from dbkeeper.pitr.basebackup import BaseBackup, Listed
from dbkeeper.pitr.retain import ALWAYS_HISTORY, NO_BACKUP, decide_backups, decide_wal
from dbkeeper.pitr.walfile import WalName
from dbkeeper.retention import FUTURE, Policy
from pitr_harness import PITR_SETTINGS, basebackup, dbk, restore, shared_dir, stop_restored

SEG = 16 << 20


def _wal(name: str) -> ArchivedWal:
    return ArchivedWal(WalName.parse(name), f"pitr/s/1-15/wal/x/{name}-{'0' * 64}.zst", "0" * 64, 100, False)


def _backup(bid: str, timeline: int, start_segno: int) -> BaseBackup:
    t = datetime(2026, 11, 30, tzinfo=UTC)
    lsn = start_segno * SEG + 40
    return BaseBackup(
        bid, "full", None, "l", "s", "1-15", "15.18", 15, 1, SEG, timeline, lsn, lsn + 100, t, t, t, 1.0,
        ((timeline, lsn, lsn + 100),), (), "c", "zstd", (), True,
    )  # fmt: skip


def test_wal_is_kept_from_the_oldest_kept_backup_on_its_timeline_and_descendants_and_history_always() -> None:
    history = {2: b"1\t0/5000000\tno recovery target specified\n", 3: b"1\t0/3000000\tx\n"}
    files = [
        _wal("00000002.history"),
        _wal("00000003.history"),
        _wal("000000010000000000000002"),
        _wal("000000010000000000000004"),
        _wal("000000010000000000000005.partial"),
        _wal("000000020000000000000005"),
        _wal("000000020000000000000006"),
        _wal("000000030000000000000003"),
    ]
    decisions = {d.file: d for d in decide_wal([_backup("20261130T000000Z-F", 1, 4)], files, history)}
    assert decisions["00000002.history"].keep and decisions["00000002.history"].reason == ALWAYS_HISTORY
    assert decisions["00000003.history"].keep
    assert not decisions["000000010000000000000002"].keep  # before the kept backup's start
    assert "before the start segment" in decisions["000000010000000000000002"].reason
    for kept in ("000000010000000000000004", "000000010000000000000005.partial", "000000020000000000000005"):
        assert decisions[kept].keep, kept
        assert "needed by base backup 20261130T000000Z-F" in decisions[kept].reason
    # Timeline 3 branched from 1 at segment 3, before the backup's start: no replay from it reaches there.
    assert not decisions["000000030000000000000003"].keep


def test_a_backup_written_earlier_in_the_same_second_as_prune_is_counted_not_future() -> None:
    """prune's clock is to the second; a base backup finished 0.7 s into that second is not in the future."""
    now = datetime(2026, 11, 30, 2, 24, 17, tzinfo=UTC)
    older = replace(_backup("20261130T022415Z-F", 1, 2), created_at=now.replace(second=15, microsecond=500000))
    newest = replace(_backup("20261130T022417Z-F", 1, 4), created_at=now.replace(microsecond=700000))
    ahead = replace(_backup("20261130T023000Z-F", 1, 6), created_at=now.replace(minute=30))
    entries = [Listed("1-15", b.id, f"pitr/s/1-15/base/{b.id}", "ok", b) for b in (older, newest, ahead)]
    decisions = {d.id: d for d in decide_backups(entries, Policy(keep_last=1), now)}
    assert decisions[newest.id].keep and FUTURE not in decisions[newest.id].reasons, decisions[newest.id]
    assert not decisions[older.id].keep, decisions[older.id]
    assert decisions[ahead.id].reasons == (FUTURE,)


def test_no_kept_backup_removes_no_wal() -> None:
    decisions = decide_wal([], [_wal("000000010000000000000002")], {})
    assert decisions[0].keep and decisions[0].reason == NO_BACKUP


@pytest.mark.slow
def test_prune_keeps_the_wal_a_kept_backup_in_the_middle_needs_and_it_still_restores() -> None:
    work = shared_dir("dbkeeper-pitr-work-")
    try:
        with archiving_cluster(_pg15_bindir(), settings=PITR_SETTINGS) as ac:
            ac.cluster.psql("CREATE TABLE t (x int)")
            ids = []
            for _ in range(3):
                ids.append(basebackup(ac)["id"])
                for _ in range(2):
                    ac.cluster.psql("INSERT INTO t SELECT generate_series(1, 100)")
                    closed = ac.switch()
            ac.wait_archived(closed)
            first, middle, _newest = ids
            listing = dbk(ac, "prune", "--keep-last", "2", "--dry-run")
            assert listing.returncode == 0, listing.stderr
            out = listing.stdout
            assert f"remove  base backup {first}" in out and f"keep    base backup {middle}" in out, out
            assert f"needed by base backup {middle}" in out, out
            assert "remove WAL" in out and "before the start segment" in out, out
            store = Path(ac.store)
            before = sorted(p.name for p in store.rglob("*") if p.is_file())
            assert any(first in str(p) for p in store.rglob("backup.json"))

            done = dbk(ac, "prune", "--keep-last", "2", "--json")
            assert done.returncode == 0, done.stderr
            after = sorted(p.name for p in store.rglob("*") if p.is_file())
            assert len(after) < len(before)
            assert not any(first in str(p) for p in store.rglob("*") if p.is_file())
            middle_doc = next(p for p in store.rglob("backup.json") if middle in str(p)).read_text()
            start_segment = __import__("json").loads(middle_doc)["start_segment"]
            segs = [n[:24] for n in after if len(n) > 24 and n[24] == "-" and n[:8] == "00000001"]
            assert segs and min(segs) == start_segment, (segs, start_segment)

            # The middle backup, replayed through the WAL between it and the newest, to the archive's end.
            datadir = work / "middle"
            restored = restore(ac, datadir, "--base-backup", middle, "--to-latest")
            assert restored.returncode == 0, restored.stderr + restored.stdout
            stop_restored(datadir, ac.cluster.bindir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
