"""Smoke queries for drills: a plain SQL file, one statement per ``;``, with optional expectations.

Format::

    -- Comments are ignored. A statement ends with a ';' at the end of a line (or a line holding only ';').
    -- expect: rows >= 1000
    SELECT count(*) FROM users;

    -- expect: value = 0
    SELECT count(*) FROM game_sessions WHERE user_id NOT IN (SELECT id FROM users);

    SELECT 1 FROM users LIMIT 1;   -- no expectation: it only has to run without error

Every statement must run without error. An expectation is a ``-- expect: NAME OP VALUE`` comment directly
above its statement (several may stack; all must hold). It is compared with the first column of the first row
the statement returns; NAME (``rows``, ``value``, ``orphans`` …) only labels it in the report. OP is one of
``= == != <> < <= > >=``. VALUE is a number (compared as a number), ``true``/``false`` (booleans: ``t``/``f``
and ``1``/``0`` match too), or any other text, quoted or not, compared as text with ``=``/``!=`` only. A
statement with an expectation that returns no row fails.

Why so little: a drill asks "is the data there and plausible?", answered by a count or a ``bool`` query each.
Anything richer belongs in SQL itself (``SELECT count(*) > 1000 AND max(created_at) > now() - '2 days'``).
Statements run one at a time, each in its own session, in the drill's scratch database only.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from dbkeeper.errors import UsageError

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_EXPECT = re.compile(r"^--\s*expect\s*:\s*(.*)$", re.IGNORECASE)
_CLAUSE = re.compile(r"^(?P<name>[A-Za-z_][\w ]*?)\s*(?P<op>==|!=|<>|<=|>=|=|<|>)\s*(?P<value>.+?)\s*$")
_TRUE, _FALSE = {"t", "true", "1", "yes", "on"}, {"f", "false", "0", "no", "off"}


@dataclass(frozen=True)
class Expectation:
    name: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.name} {self.op} {self.value}"

    def holds(self, found: str | None) -> bool:
        """Whether the first value of the first row (None: no row, or NULL) satisfies this expectation."""
        if found is None:
            return False
        quoted = len(self.value) >= 2 and self.value[0] == self.value[-1] and self.value[0] in "'\""
        want = self.value[1:-1] if quoted else self.value
        if not quoted and want.lower() in ("true", "false"):
            truth = _TRUE if want.lower() == "true" else _FALSE
            return (found.strip().lower() in truth) == (self.op in ("=", "=="))
        number = None if quoted else _decimal(want)
        if number is not None:
            got = _decimal(found)
            return got is not None and _OPS[self.op](got, number)
        return _OPS[self.op](found, want)


@dataclass(frozen=True)
class Statement:
    sql: str
    line: int
    expect: tuple[Expectation, ...] = field(default=())

    @property
    def label(self) -> str:
        """The statement on one line, shortened for reports."""
        flat = " ".join(self.sql.rstrip(";").split())
        return flat if len(flat) <= 70 else flat[:67] + "..."


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str


def evaluate(statement: Statement, rows: list[list[str | None]]) -> Outcome:
    """Judge what a statement returned against its expectations; the detail says what was found."""
    first = rows[0][0] if rows and rows[0] else None
    shown = "no rows" if not rows else ("NULL" if first is None else repr(first) if first == "" else first)
    if not statement.expect:
        return Outcome(True, f"{statement.label} -> ran, {len(rows)} row(s)")
    failed = [e for e in statement.expect if not e.holds(first)]
    wanted = ", ".join(str(e) for e in statement.expect)
    if failed:
        return Outcome(False, f"{statement.label} -> {shown}, expected {', '.join(str(e) for e in failed)}")
    return Outcome(True, f"{statement.label} -> {shown} ({wanted})")


def load(path: str | Path) -> list[Statement]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the smoke file {path}: {exc}", "check --smoke (config [drill] smoke)") from exc
    statements = parse(text, str(path))
    if not statements:
        raise UsageError(f"the smoke file {path} holds no SQL statement", "see docs/DRILLS.md for its format")
    return statements


def parse(text: str, where: str = "smoke file") -> list[Statement]:
    statements: list[Statement] = []
    pending: list[Expectation] = []
    body: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not body and (not line or line.startswith("--")):
            match = _EXPECT.match(line)
            if match:
                pending.append(_expectation(match.group(1), f"{where}:{number}"))
            continue
        if not body:
            start = number
        if line != ";":
            body.append(raw)
        if _code(line).endswith(";") and body:
            statements.append(_statement(body, start, pending))
            body, pending = [], []
    if body:
        statements.append(_statement(body, start, pending))
    elif pending:
        raise UsageError(f"{where}: an expectation at the end of the file has no statement below it")
    return statements


def _statement(body: list[str], start: int, pending: list[Expectation]) -> Statement:
    sql = "\n".join(code for line in body if (code := _code(line.rstrip()))).strip()
    return Statement(sql if sql.endswith(";") else sql + ";", start, tuple(pending))


def _expectation(text: str, where: str) -> Expectation:
    match = _CLAUSE.match(text.strip())
    if not match:
        raise UsageError(
            f"{where}: cannot read the expectation {text.strip()!r}",
            "write it as -- expect: NAME OP VALUE, e.g. -- expect: rows >= 1000 (OP: = != < <= > >=)",
        )
    name, op, value = match["name"].strip(), match["op"], match["value"]
    if op not in ("=", "==", "!=", "<>") and _decimal(value) is None:
        raise UsageError(f"{where}: {op} needs a number, not {value!r}", "compare text with = or != only")
    return Expectation(name, op, value)


def _code(line: str) -> str:
    """The line without a trailing ``--`` comment (outside quotes), so ``SELECT 1; -- note`` ends a statement."""
    quoted = False
    for i, ch in enumerate(line):
        if ch == "'":
            quoted = not quoted
        elif not quoted and line.startswith("--", i):
            return line[:i].rstrip()
    return line


def _decimal(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
