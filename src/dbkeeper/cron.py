"""Cron expressions: the 5-field subset dbkeeper schedules accept, run times, and systemd's OnCalendar form.

Accepted: ``minute hour day-of-month month day-of-week`` with numbers, ``*``, lists ``1,15``, ranges ``1-5``,
steps ``*/15``, ``0-30/10`` and ``5/15``, three-letter month and weekday names, and the macros ``@hourly``,
``@daily``, ``@weekly``, ``@monthly``, ``@yearly``. Times are UTC. Refused: seconds or year fields, ``L``, ``W``,
``#`` and ``?`` (systemd cannot say them), and a day of month together with a day of week: cron then runs on
*either* day, systemd only on days that are *both*, and croniter and the crons differ in the details; refusing
it keeps one meaning everywhere.

Each field is parsed into the set of values it matches, which is all OnCalendar needs; croniter (checked too)
computes the run times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_SYSTEMD_DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
_SYSTEMD_WEEK = [1, 2, 3, 4, 5, 6, 0]  # systemd's weeks start on Monday
_DIGITS = 20  # a longer number is out of every field's range


class CronError(ValueError):
    """The expression is not in the accepted subset; the text says which part and why."""


@dataclass(frozen=True)
class Cron:
    expr: str  # as written
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]  # of the month
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (cron's 7 folded into 0)

    def next_after(self, when: datetime) -> datetime:
        """The first run strictly after ``when`` (a timezone-aware datetime; the result is in UTC)."""
        from croniter import croniter

        result: datetime = croniter(self.normalized, when).get_next(datetime)
        return result

    def matches(self, when: datetime) -> bool:
        """Whether the minute holding ``when`` is a run time."""
        minute = when.replace(second=0, microsecond=0)
        return self.next_after(minute - timedelta(seconds=1)) == minute

    @property
    def normalized(self) -> str:
        return MACROS.get(self.expr.strip().lower(), self.expr.strip())

    @property
    def times(self) -> tuple[frozenset[int], ...]:
        """What the expression matches; equal for two spellings of one schedule."""
        return (self.minutes, self.hours, self.days, self.months, self.weekdays)

    def fields(self) -> str:
        """The 5 fields in the form every cron reads: numbers, ranges, lists and ``*/n``; no names or macros."""
        out = []
        for values, (_name, low, high) in zip(self.times, _FIELDS, strict=True):
            high = 6 if high == 7 else high
            full = range(low, high + 1)
            steps = [n for n in range(2, high - low) if len(values) > 2 and values == frozenset(full[::n])]
            if values == frozenset(full):
                out.append("*")
            elif steps:
                out.append(f"*/{steps[0]}")
            else:
                out.append(_runs(sorted(values), str, "-"))
        return " ".join(out)


def parse(expr: str) -> Cron:
    """Parse and check ``expr``; raise CronError naming the field that is wrong."""
    text = MACROS.get(expr.strip().lower(), expr.strip())
    if text.startswith("@"):
        raise CronError(f"{expr!r}: unknown macro; use one of {', '.join(MACROS)} or 5 fields")
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"{expr!r} has {len(parts)} fields; write 5: minute hour day-of-month month day-of-week")
    sets = [_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    if parts[2] != "*" and parts[4] != "*":
        raise CronError(
            f"{expr!r} sets both a day of month and a day of week, which cron reads as either one; set one of them to *"
        )
    from croniter import croniter  # only configs with a [schedule] pay for it

    if not croniter.is_valid(text):
        raise CronError(f"{expr!r} is not a valid cron expression")
    weekdays = frozenset(d % 7 for d in sets[4])
    if not any(day <= _LONGEST[month] for month in sets[3] for day in sets[2]):
        raise CronError(f"{expr!r} never runs: none of its months has such a day")
    return Cron(expr, sets[0], sets[1], sets[2], sets[3], weekdays)


_LONGEST = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            digits = step_text.lstrip("0")
            if not _is_number(step_text) or not digits:
                raise CronError(f"{name}: step {step_text!r} in {item!r} must be a whole number above 0")
            step = int(digits) if len(digits) <= _DIGITS else high + 1  # any step past the range does the same
        if base == "*":
            start, stop = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, stop = _value(first, name, low, high), _value(last, name, low, high)
            if start > stop:
                raise CronError(f"{name}: range {base!r} runs backwards")
        else:
            start = _value(base, name, low, high)
            stop = high if step_text else start
        values.update(range(start, stop + 1, step))
    return frozenset(values)


def _value(text: str, name: str, low: int, high: int) -> int:
    names = _MONTHS if name == "month" else _DAYS if name == "day of week" else []
    if text.lower() in names:
        return names.index(text.lower()) + (1 if name == "month" else 0)
    if not _is_number(text):
        raise CronError(f"{name}: {text!r} is not supported; use numbers, *, lists, ranges and steps")
    digits = text.lstrip("0") or "0"
    if len(digits) > _DIGITS:  # int() refuses thousands of digits; out of every range anyway
        raise CronError(f"{name}: {digits[:_DIGITS]}… is out of range {low}-{high}")
    value = int(digits)
    if not low <= value <= high:
        raise CronError(f"{name}: {value} is out of range {low}-{high}")
    return value


def _is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also holds for '²', which int() refuses."""
    return text.isascii() and text.isdigit()


def to_oncalendar(cron: Cron) -> str:
    """systemd's ``OnCalendar=`` for the same run times: ``[DOW] *-MM-DD HH:MM:00 UTC``."""
    days = ""
    if cron.weekdays != frozenset(range(7)):
        order = [d for d in _SYSTEMD_WEEK if d in cron.weekdays]
        days = _runs([_SYSTEMD_WEEK.index(d) for d in order], lambda i: _SYSTEMD_DAYS[_SYSTEMD_WEEK[i]]) + " "
    month = _list(cron.months, 1, 12)
    day = _list(cron.days, 1, 31)
    return f"{days}*-{month}-{day} {_list(cron.hours, 0, 23)}:{_list(cron.minutes, 0, 59)}:00 UTC"


def _list(values: frozenset[int], low: int, high: int) -> str:
    if values == frozenset(range(low, high + 1)):
        return "*"
    return _runs(sorted(values), lambda v: f"{v:02d}")


def _runs(values: list[int], show: Callable[[int], str], dots: str = "..") -> str:
    """``1,2,3,5`` -> ``01..03,05``: runs of three or more as ranges."""
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{show(values[i])}{dots}{show(values[j])}")
            i = j + 1
        else:
            parts.append(show(values[i]))
            i += 1
    return ",".join(parts)
