"""The PITR window's one rule (pitr.window.span), as drills, status, metrics and the dashboard all see it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dbkeeper.pitr.archive import ArchivedWal
from dbkeeper.pitr.walfile import WalName
from dbkeeper.pitr.window import span

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def _wal(name: str, stored: datetime | None) -> ArchivedWal:
    return ArchivedWal(WalName.parse(name), f"pitr/s/1-15/wal/x/{name}", "0" * 64, 100, False, stored)


def test_the_window_runs_from_the_oldest_good_backups_end_to_the_newest_segment_the_store_received() -> None:
    files = [
        _wal("000000010000000000000003", T0 + timedelta(minutes=5)),
        _wal("000000010000000000000004", T0 + timedelta(minutes=9)),
        _wal("000000010000000000000002", T0 - timedelta(minutes=1)),
    ]
    found = span("1-15", [T0 + timedelta(minutes=3), T0], files)
    assert found is not None
    assert (found.start, found.end, found.backups) == (T0, T0 + timedelta(minutes=9), 2)
    assert found.seconds == 540


def test_no_window_without_a_base_backup_or_without_a_segment_after_it() -> None:
    files = [_wal("000000010000000000000003", T0 + timedelta(minutes=5))]
    assert span("1-15", [], files) is None
    assert span("1-15", [T0 + timedelta(minutes=5)], files) is None  # arrived at the backup's end: nothing to replay
    assert span("1-15", [T0], [_wal("000000010000000000000003", None)]) is None  # arrival unknown


def test_partial_history_and_backup_files_do_not_stretch_the_window() -> None:
    later = T0 + timedelta(hours=1)
    files = [
        _wal("000000010000000000000003", T0 + timedelta(minutes=5)),
        _wal("000000010000000000000004.partial", later),
        _wal("00000002.history", later),
        _wal("000000010000000000000003.00000028.backup", later),
    ]
    found = span("1-15", [T0], files)
    assert found is not None and found.end == T0 + timedelta(minutes=5)
