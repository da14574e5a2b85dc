"""The DR drill log: a Markdown table, one row per drill, appended; written and read back here only.

People read it on GitHub or in an editor; ``dbkeeper status`` and the metrics read it back, so both sides live
in this module and cannot drift. Columns are found by their header names, so a log written before a column was
added still reads (the missing cell is empty), and notes above the table are ignored. A row that does not parse
(a hand edit) is skipped, never fatal.

Appending: one ``write`` of a whole line on a file opened ``O_APPEND``, so two drills finishing at once both
land; a missing file (and its directory) is created with the header first.

The log lives in the state directory (state.py) unless ``[drill] log`` names a file, and every row is also kept
in the store as a drill record (repo.drills): ``history`` merges the two, so a host that never drilled (a
monitoring host, a fresh container) sees the drills of every other host.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dbkeeper import state
from dbkeeper.errors import DbkeeperError
from dbkeeper.repo import DrillRecord
from dbkeeper.repo.manifest import iso

PASS, FAIL = "PASS", "FAIL"
NONE = "—"

COLUMNS = (
    "date (UTC)",
    "database",
    "backup file",
    "backup age",
    "size",
    "restore seconds",
    "total seconds",
    "checks",
    "result",
    "anomalies",
)

HEADER = (
    "# DR drill log\n"
    "\n"
    "One row per database per `dbkeeper drill`, appended by dbkeeper: a random recent backup restored into a\n"
    "scratch database, checked, smoke-tested and dropped (docs/DRILLS.md). `dbkeeper status` reads the last row\n"
    "of each database back: keep the table's header line as it is; notes belong above it.\n"
    "\n"
)
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


@dataclass(frozen=True)
class Row:
    date: datetime
    database: str
    result: str
    backup: str = ""
    backup_age: str = ""
    size: str = ""
    restore_seconds: float | None = None
    total_seconds: float | None = None
    checks: str = ""
    anomalies: str = ""

    @property
    def passed(self) -> bool:
        return self.result == PASS


def default_path() -> Path:
    """The log this host keeps when the config names none: in the state directory, not the working one."""
    return state.drill_log_path()


def to_record(row: Row, source_id: str, host: str) -> DrillRecord:
    return DrillRecord(
        source_id=source_id,
        series=row.database,
        date=iso(row.date),
        result=row.result,
        backup=row.backup,
        backup_age=row.backup_age,
        size=row.size,
        restore_seconds=row.restore_seconds,
        total_seconds=row.total_seconds,
        checks=row.checks,
        anomalies=row.anomalies,
        host=host,
    )


def from_record(record: DrillRecord) -> Row:
    return Row(
        date=record.started,
        database=record.series,
        result=record.result,
        backup=record.backup,
        backup_age=record.backup_age,
        size=record.size,
        restore_seconds=record.restore_seconds,
        total_seconds=record.total_seconds,
        checks=record.checks,
        anomalies=record.anomalies,
    )


def history(path: str | Path, stored: Iterable[DrillRecord] = ()) -> list[Row]:
    """This host's log and the store's drill records (``Repository.drill_records``) together, oldest first, each
    drill once (a row this host wrote is in both)."""
    rows = read(path)
    seen = {(r.date, r.database) for r in rows}
    rows += [row for row in map(from_record, stored) if (row.date, row.database) not in seen]
    return sorted(rows, key=lambda r: r.date)


def table_head() -> str:
    return _line(COLUMNS) + _line(["---"] * len(COLUMNS))


def format_row(row: Row) -> str:
    cells = [
        row.date.astimezone(UTC).strftime(_DATE_FORMAT),
        row.database,
        row.backup or NONE,
        row.backup_age or NONE,
        row.size or NONE,
        _seconds(row.restore_seconds),
        _seconds(row.total_seconds),
        row.checks or NONE,
        row.result,
        row.anomalies or NONE,
    ]
    return _line(cells)


def append(path: str | Path, row: Row) -> None:
    """Add ``row`` at the end of the log, creating the file with its header and table head if needed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, (HEADER + table_head()).encode())
            os.close(fd)
        except FileExistsError:
            pass
        text = path.read_text(encoding="utf-8")
        prefix = "" if text.endswith("\n") or not text else "\n"
        if _header_index(text.splitlines()) is None:
            prefix += "\n" + table_head()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, (prefix + format_row(row)).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise DbkeeperError(
            f"cannot write the drill log {path}: {exc.strerror or exc}",
            "point --log (config [drill] log) at a writable file",
        ) from exc


def read(path: str | Path) -> list[Row]:
    """Every row that parses, in file order (oldest first); a missing log is an empty one."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise DbkeeperError(f"cannot read the drill log {path}: {exc}", "check --log / --drill-log") from exc
    start = _header_index(lines)
    if start is None:
        return []
    names = _cells(lines[start])
    rows = []
    for line in lines[start + 1 :]:
        cells = _cells(line)
        if len(cells) != len(names) or set(line.replace("|", "").strip()) <= {"-", ":", " "}:
            continue
        row = _parse(dict(zip(names, cells, strict=True)))
        if row is not None:
            rows.append(row)
    return rows


def last(rows: list[Row], database: str, *, passed: bool = False) -> Row | None:
    """The newest row for ``database`` (only passing ones with ``passed``); of two in one second, the later row."""
    found = sorted((r for r in rows if r.database == database and (r.passed or not passed)), key=lambda r: r.date)
    return found[-1] if found else None


def _parse(cell: dict[str, str]) -> Row | None:
    try:
        date = datetime.strptime(cell["date (UTC)"], _DATE_FORMAT).replace(tzinfo=UTC)
        result = cell["result"].upper()
        if result not in (PASS, FAIL) or not cell["database"]:
            return None
        return Row(
            date=date,
            database=cell["database"],
            result=result,
            backup=_text(cell.get("backup file", "")),
            backup_age=_text(cell.get("backup age", "")),
            size=_text(cell.get("size", "")),
            restore_seconds=_number(cell.get("restore seconds", "")),
            total_seconds=_number(cell.get("total seconds", "")),
            checks=_text(cell.get("checks", "")),
            anomalies=_text(cell.get("anomalies", "")),
        )
    except (KeyError, ValueError):
        return None


def _header_index(lines: list[str]) -> int | None:
    for i, line in enumerate(lines):
        cells = _cells(line)
        if cells and cells[0] == COLUMNS[0] and "result" in cells and "database" in cells:
            return i
    return None


def _cells(line: str) -> list[str]:
    line = line.strip()
    if not line.startswith("|"):
        return []
    inner = line[1:]
    if inner.endswith("|") and not inner.endswith("\\|"):
        inner = inner[:-1]
    return [p.strip().replace("\\|", "|") for p in _CELL_SPLIT.split(inner)]


def _line(cells: list[str] | tuple[str, ...]) -> str:
    safe = [" ".join(c.replace("|", "\\|").split()) for c in cells]
    return "| " + " | ".join(safe) + " |\n"


def _seconds(value: float | None) -> str:
    return NONE if value is None else f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _number(text: str) -> float | None:
    return None if _text(text) == "" else float(text)


def _text(text: str) -> str:
    return "" if text == NONE else text
