"""The drill log: what drill appends is what status and the metrics read back, and hand edits do no harm."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dbkeeper import drill_log
from dbkeeper.drill_log import Row
from dbkeeper.errors import DbkeeperError

T0 = datetime(2026, 11, 27, 2, 0, 0, tzinfo=UTC)


def _row(**kw: object) -> Row:
    base: dict[str, object] = dict(
        date=T0,
        database="casino",
        result="PASS",
        backup="casino_20261126_020000.sql.gz",
        backup_age="24h",
        size="12.3 MB",
        restore_seconds=4.21,
        total_seconds=5.0,
        checks="5/5 OK",
        anomalies="",
    )
    base.update(kw)
    return Row(**base)  # type: ignore[arg-type]


def test_append_creates_the_file_with_header_and_rows_read_back(tmp_path: Path) -> None:
    log = tmp_path / "docs" / "DR_DRILL_LOG.md"
    first = _row()
    second = _row(
        date=T0.replace(day=28),
        result="FAIL",
        restore_seconds=None,
        anomalies="smoke 1: SELECT a | b -> 3, expected rows >= 1000; slow restore",
    )
    drill_log.append(log, first)
    drill_log.append(log, second)
    text = log.read_text()
    assert text.startswith("# DR drill log\n")
    assert text.count("| date (UTC) | database |") == 1
    assert "| 2026-11-27 02:00:00 | casino | casino_20261126_020000.sql.gz | 24h | 12.3 MB | 4.210 | 5.000 |" in text
    assert "SELECT a \\| b" in text  # a pipe inside a cell is escaped
    assert drill_log.read(log) == [first, second]


def test_last_row_per_database(tmp_path: Path) -> None:
    rows = [
        _row(date=T0, database="casino"),
        _row(date=T0.replace(day=28), database="casino", result="FAIL"),
        _row(date=T0.replace(day=29), database="app"),
    ]
    last = drill_log.last(rows, "casino")
    assert last is not None and last.result == "FAIL"
    passed = drill_log.last(rows, "casino", passed=True)
    assert passed is not None and passed.date == T0
    assert drill_log.last(rows, "nope") is None
    same_second = [_row(result="FAIL"), _row(result="PASS")]  # two drills in one second: the later row wins
    assert drill_log.last(same_second, "casino") == same_second[1]


def test_missing_log_is_empty_and_hand_edits_are_skipped(tmp_path: Path) -> None:
    assert drill_log.read(tmp_path / "none.md") == []
    log = tmp_path / "log.md"
    log.write_text(
        "# Our drills\n\nSome notes | with a pipe.\n\n"
        "| date (UTC) | database | backup file | backup age | size | restore seconds | checks | result | anomalies |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
        "| 2026-11-20 02:00:00 | casino | c.sql.gz | 3h | 1 MB | 2.50 | 4/4 OK | PASS | — |\n"
        "| yesterday | casino | c.sql.gz | 3h | 1 MB | 2.50 | 4/4 OK | PASS | — |\n"
        "| 2026-11-21 02:00:00 | casino | c.sql.gz | 3h | 1 MB | 2.50 | 4/4 OK | MAYBE | — |\n"
        "| 2026-11-22 02:00:00 | casino | too | few |\n"
    )
    [row] = drill_log.read(log)  # an older log without 'total seconds' still reads
    assert row.date == datetime(2026, 11, 20, 2, tzinfo=UTC) and row.restore_seconds == 2.5
    assert row.total_seconds is None and row.anomalies == "" and row.passed


def test_append_to_a_file_without_the_table_adds_its_head(tmp_path: Path) -> None:
    log = tmp_path / "log.md"
    log.write_text("# Notes written by hand, no trailing newline")
    drill_log.append(log, _row())
    lines = log.read_text().splitlines()
    assert lines[0] == "# Notes written by hand, no trailing newline"
    assert lines[-3].startswith("| date (UTC) |") and lines[-1].startswith("| 2026-11-27 02:00:00 |")
    assert drill_log.read(log) == [_row()]


def test_unwritable_log_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(DbkeeperError) as info:
        drill_log.append(tmp_path / "file" / "log.md", _row())
    assert info.value.message.startswith(f"cannot write the drill log {tmp_path / 'file' / 'log.md'}")
    assert "--log" in (info.value.hint or "")
