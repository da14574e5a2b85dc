"""Cron expressions: what is accepted, what is refused and why, and OnCalendar forms that systemd itself
agrees fire at the same times as croniter."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from dbkeeper.cron import CronError, parse, to_oncalendar

SYSTEMD_HINT = "systemd-analyze not found: install the systemd package (scripts/install-test-deps does)"


@pytest.mark.parametrize(
    ("expr", "fields", "oncalendar"),
    [
        ("0 2 * * *", "0 2 * * *", "*-*-* 02:00:00 UTC"),
        ("0 4 * * 0", "0 4 * * 0", "Sun *-*-* 04:00:00 UTC"),
        ("0 4 * * 7", "0 4 * * 0", "Sun *-*-* 04:00:00 UTC"),
        ("@daily", "0 0 * * *", "*-*-* 00:00:00 UTC"),
        ("@weekly", "0 0 * * 0", "Sun *-*-* 00:00:00 UTC"),
        ("@monthly", "0 0 1 * *", "*-*-01 00:00:00 UTC"),
        ("@hourly", "0 * * * *", "*-*-* *:00:00 UTC"),
        ("*/15 9-17 * * mon-fri", "*/15 9-17 * * 1-5", "Mon..Fri *-*-* 09..17:00,15,30,45:00 UTC"),
        ("30 1 1,15 * *", "30 1 1,15 * *", "*-*-01,15 01:30:00 UTC"),
        ("0 0 * * 6,7", "0 0 * * 0,6", "Sat,Sun *-*-* 00:00:00 UTC"),
        ("0 0 * * 0-2", "0 0 * * 0-2", "Mon,Tue,Sun *-*-* 00:00:00 UTC"),
        ("5/20 * * jan-mar,dec *", "5,25,45 * * 1-3,12 *", "*-01..03,12-* *:05,25,45:00 UTC"),
        ("0 */6 * * *", "0 */6 * * *", "*-*-* 00,06,12,18:00:00 UTC"),
        (
            "0-30/10 3 */2 * *",
            "0,10,20,30 3 */2 * *",
            "*-*-01,03,05,07,09,11,13,15,17,19,21,23,25,27,29,31 03:00,10,20,30:00 UTC",
        ),
        ("0 2 29 2 *", "0 2 29 2 *", "*-02-29 02:00:00 UTC"),
    ],
)
def test_accepted_expressions(expr: str, fields: str, oncalendar: str) -> None:
    cron = parse(expr)
    assert cron.fields() == fields
    assert to_oncalendar(cron) == oncalendar
    assert parse(fields).times == cron.times  # the rewritten cron line means the same


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 25 * * *", "hour: 25 is out of range 0-23"),
        ("60 2 * * *", "minute: 60 is out of range 0-59"),
        ("0 2 * * 8", "day of week: 8 is out of range 0-7"),
        ("0 2 0 * *", "day of month: 0 is out of range 1-31"),
        ("0 2 * * * *", "has 6 fields; write 5"),
        ("0 2 * *", "has 4 fields; write 5"),
        ("0 2 L * *", "day of month: 'L' is not supported"),
        ("0 2 * * 1#2", "day of week: '1#2' is not supported"),
        ("0 2 ? * *", "day of month: '?' is not supported"),
        ("0 2 15W * *", "'15W' is not supported"),
        ("*/0 2 * * *", "minute: step '0' in '*/0' must be a whole number above 0"),
        ("5-1 2 * * *", "minute: range '5-1' runs backwards"),
        ("@reboot", "unknown macro"),
        ("0 2 1 * 1", "sets both a day of month and a day of week"),
        ("", "has 0 fields"),
    ],
)
def test_refused_expressions_say_why(expr: str, message: str) -> None:
    with pytest.raises(CronError, match=re.escape(message)):
        parse(expr)


@pytest.mark.parametrize(
    ("expr", "now", "expected"),
    [
        ("0 2 * * *", "2026-11-27T01:59:59", "2026-11-27T02:00:00"),
        ("0 2 * * *", "2026-11-27T02:00:00", "2026-11-28T02:00:00"),  # strictly after
        ("0 4 * * 0", "2026-11-27T12:00:00", "2026-11-29T04:00:00"),  # Friday -> Sunday
        ("0 2 * * *", "2026-12-31T23:00:00", "2027-01-01T02:00:00"),
        ("0 2 * * *", "2026-03-29T00:30:00", "2026-03-29T02:00:00"),  # Europe's DST night: UTC has none
        ("0 2 * * *", "2026-10-25T01:30:00", "2026-10-25T02:00:00"),
        ("0 2 29 2 *", "2026-03-01T00:00:00", "2028-02-29T02:00:00"),
    ],
)
def test_next_after(expr: str, now: str, expected: str) -> None:
    when = datetime.fromisoformat(now).replace(tzinfo=UTC)
    assert parse(expr).next_after(when) == datetime.fromisoformat(expected).replace(tzinfo=UTC)


def test_matches_the_whole_minute() -> None:
    cron = parse("0 2 * * *")
    assert cron.matches(datetime(2026, 11, 27, 2, 0, 0, tzinfo=UTC))
    assert cron.matches(datetime(2026, 11, 27, 2, 0, 59, 999, tzinfo=UTC))
    assert not cron.matches(datetime(2026, 11, 27, 2, 1, 0, tzinfo=UTC))
    assert not cron.matches(datetime(2026, 11, 27, 1, 59, 59, tzinfo=UTC))


@pytest.mark.parametrize(
    "expr",
    [
        "0 2 * * *",
        "0 4 * * 0",
        "*/15 9-17 * * mon-fri",
        "30 1 1,15 * *",
        "0 0 * * 6,7",
        "0 0 * * 0-2",
        "5/20 * * jan-mar,dec *",
        "0-30/10 3 */2 * *",
        "0 2 29 2 *",
        "45 23 31 * *",
    ],
)
def test_systemd_fires_when_croniter_does(expr: str) -> None:
    """systemd-analyze (the real parser of OnCalendar=) lists the same next run times as croniter."""
    tool = shutil.which("systemd-analyze")
    if not tool:
        pytest.fail(SYSTEMD_HINT, pytrace=False)
    cron = parse(expr)
    base = datetime(2026, 11, 27, 23, 59, 30, tzinfo=UTC)
    out = subprocess.run(
        [tool, "calendar", "--iterations=12", f"--base-time={base:%Y-%m-%d %H:%M:%S} UTC", to_oncalendar(cron)],
        capture_output=True,
        text=True,
        check=True,
        env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
    ).stdout
    systemd = [
        datetime.strptime(m, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        for m in re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", out)
    ]
    croniter = []
    when = base
    for _ in range(12):
        when = cron.next_after(when)
        croniter.append(when)
    assert systemd == croniter, out


@pytest.mark.parametrize("expr", ["0 2 31 2 *", "0 2 30,31 2 *", "0 2 31 4,6,9,11 *"])
def test_an_expression_that_never_runs_is_refused(expr: str) -> None:
    with pytest.raises(CronError, match="never runs"):
        parse(expr)
    assert parse("0 2 29 2 *").next_after(datetime(2027, 1, 1, tzinfo=UTC)).year == 2028  # leap years do
