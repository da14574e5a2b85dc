"""The PITR window's one rule (pitr.window.span), as drills, status, metrics and the dashboard all see it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from dbkeeper.pitr.archive import ArchivedWal
from dbkeeper.pitr.walfile import WalName
from dbkeeper.pitr.window import Window, span

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


def test_a_drills_target_is_a_whole_second_never_before_the_oldest_backup_is_consistent() -> None:
    """The CI failure: a window starting 0.7 s into a second gave, rounded down, a target before the backup's end,
    and the drill's restore failed for a reason the archive did not have."""
    start = T0 + timedelta(seconds=14, microseconds=700000)
    found = Window("1-15", start, T0 + timedelta(seconds=24), 1)

    class Lowest(random.Random):
        def randint(self, a: int, b: int) -> int:
            return a

    assert found.pick(timedelta(seconds=5), Lowest()) == T0 + timedelta(seconds=15)
    assert found.pick(timedelta(seconds=9), Lowest()) == T0 + timedelta(seconds=15)  # 15 <= 24 - 9
    assert found.pick(timedelta(seconds=9, microseconds=1), Lowest()) is None  # no whole second is that far back


@given(
    start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
    length=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=2)),
    margin=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=1)),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_pick_lies_inside_the_window_and_leaves_the_margin(
    start: datetime, length: timedelta, margin: timedelta, seed: int
) -> None:
    found = Window("1-15", start, start + length, 1)
    target = found.pick(margin, random.Random(seed))
    first_whole_second = start + timedelta(microseconds=-start.microsecond % 1_000_000)
    if target is None:
        assert first_whole_second > found.end - margin  # no whole second fits
    else:
        assert target.microsecond == 0
        assert start <= target <= found.end - margin


def test_the_window_starts_at_the_first_whole_second_a_restore_can_name() -> None:
    """status and the dashboard show the start to the second: a backup ending 0.7 s into a second starts the
    window at the next one, which `restore --pitr --target-time` reaches; the second shown is never refused."""
    files = [_wal("000000010000000000000003", T0 + timedelta(minutes=5))]
    found = span("1-15", [T0 + timedelta(seconds=14, microseconds=700000)], files)
    assert found is not None and found.start == T0 + timedelta(seconds=15)
    exact = span("1-15", [T0 + timedelta(seconds=14)], files)
    assert exact is not None and exact.start == T0 + timedelta(seconds=14)


def test_the_latest_target_to_suggest_leaves_the_margin_or_there_is_none() -> None:
    """The dashboard's `restore --pitr --to-time` names this second: the window's end would fail whenever the
    newest WAL holds no commit after it (recovery ends before reaching the target)."""
    found = Window("1-15", T0 + timedelta(seconds=14, microseconds=700000), T0 + timedelta(minutes=5, seconds=30), 1)
    assert found.latest() == T0 + timedelta(minutes=4, seconds=30)
    assert found.latest(timedelta(seconds=315)) == T0 + timedelta(seconds=15)  # the first whole second
    assert found.latest(timedelta(seconds=316)) is None
