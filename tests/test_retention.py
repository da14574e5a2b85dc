"""apply_policy as tables: each row gives backups, a policy, and exactly which backups survive.

Expected sets are worked out by hand from the calendar (comments say why), never by a second implementation.
Backups are at 02:00 UTC unless a time is given; ``now`` is 2026-11-27 12:00 UTC, a Friday in ISO week 48.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from dbkeeper.errors import UsageError
from dbkeeper.retention import Candidate, Decision, Policy, apply_policy, summarize

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
PLUS2 = timezone(timedelta(hours=2))


def at(text: str) -> datetime:
    """'2026-11-27' (02:00) or '2026-11-27 14:00', in UTC."""
    return datetime.strptime(text if " " in text else f"{text} 02:00", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def name(text: str) -> str:
    return f"casino_{at(text):%Y%m%d_%H%M%S}.sql.gz"


def b(text: str, good: bool = True) -> Candidate:
    return Candidate(name(text), at(text), good)


def broken(text: str) -> Candidate:
    return b(text, good=False)


def days(last: str, count: int, *hours: str) -> list[Candidate]:
    """Good backups on each of ``count`` consecutive days ending on ``last``, at ``hours`` (default 02:00)."""
    end = at(last).date()
    stamps = [f"{end - timedelta(days=n)} {h}" for n in range(count) for h in hours or ("02:00",)]
    return [b(s) for s in stamps]


def keys(*texts: str) -> list[str]:
    return [name(t) for t in texts]


def span(last: str, count: int) -> list[str]:
    """Names of the 02:00 backups on ``count`` days ending on ``last``, newest first."""
    return [c.key for c in days(last, count)]


def kept(backups: list[Candidate], policy: Policy, now: datetime = NOW) -> list[str]:
    return summarize(apply_policy(backups, policy, now))[0]


def reasons(decisions: list[Decision], text: str) -> tuple[str, ...]:
    return next(d.reasons for d in decisions if d.key == name(text))


CASES = [
    pytest.param(days("2026-11-27", 14), Policy(keep_last=14), span("2026-11-27", 14), id="14-dailies-keep-last-14"),
    pytest.param(days("2026-11-27", 20), Policy.default(), span("2026-11-27", 14), id="default-drops-oldest-6"),
    pytest.param(
        [b("2026-11-27"), b("2026-11-26"), b("2026-11-20"), b("2026-11-10"), b("2026-11-01")],
        Policy(keep_daily=3),
        keys("2026-11-27", "2026-11-26", "2026-11-20"),  # the empty days 21..25 use no slot
        id="daily-gaps-count-only-days-with-backups",
    ),
    pytest.param(
        [b("2026-11-27"), b("2026-11-23"), b("2026-11-22"), b("2026-11-04"), b("2026-11-02")],
        Policy(keep_weekly=3),
        keys("2026-11-27", "2026-11-22", "2026-11-04"),  # W48 newest, W47 (Sun 22), W46 empty, W45 (Wed 4)
        id="weekly-gaps-count-only-weeks-with-backups",
    ),
    pytest.param(
        days("2026-11-27", 3, "10:00", "06:00", "02:00"),
        Policy(keep_daily=2),
        keys("2026-11-27 10:00", "2026-11-26 10:00"),
        id="several-a-day-keeps-newest-of-day",
    ),
    pytest.param(
        days("2026-11-27", 3, "10:00", "02:00"),
        Policy(keep_daily=5),  # 3 days use 3 of 5 slots; slots left at the oldest backup keep it too
        keys("2026-11-27 10:00", "2026-11-26 10:00", "2026-11-25 10:00", "2026-11-25 02:00"),
        id="slots-left-keep-the-oldest",
    ),
    pytest.param(
        [broken("2026-11-27"), b("2026-11-26"), b("2026-11-25"), b("2026-11-24")],
        Policy(keep_last=2),
        keys("2026-11-27", "2026-11-26", "2026-11-25"),
        id="broken-newest-kept-uses-no-slot",
    ),
    pytest.param(
        [b("2026-11-27"), b("2026-11-26"), broken("2026-11-01"), b("2026-10-01")],
        Policy(keep_last=1),
        keys("2026-11-27", "2026-11-01"),
        id="broken-old-backup-kept",
    ),
    pytest.param(
        [b("2026-12-25"), b("2026-11-27"), b("2026-11-26"), b("2026-11-25")],
        Policy(keep_last=2),
        keys("2026-12-25", "2026-11-27", "2026-11-26"),
        id="future-dated-kept-uses-no-slot",
    ),
    pytest.param(
        [b("2026-11-27 12:00"), b("2026-11-27 02:00")],
        Policy(keep_last=1),
        keys("2026-11-27 12:00"),  # created == now is not the future
        id="created-equal-now-is-counted",
    ),
    pytest.param(
        days("2026-11-27", 5),
        Policy(keep_daily=1, keep_min=3),
        span("2026-11-27", 3),
        id="keep-min-floor",
    ),
    pytest.param(
        [b("2026-11-27"), broken("2026-11-26"), b("2026-11-25"), b("2026-11-24"), b("2026-11-23")],
        Policy(keep_last=1, keep_min=3),
        keys("2026-11-27", "2026-11-26", "2026-11-25", "2026-11-24"),  # the broken one is not one of the 3
        id="keep-min-counts-only-good",
    ),
    pytest.param(days("2026-11-27", 30), Policy(keep_last=-1), span("2026-11-27", 30), id="keep-last-unlimited"),
    pytest.param(
        days("2026-11-27", 4, "10:00", "02:00"),
        Policy(keep_daily=-1),
        keys("2026-11-27 10:00", "2026-11-26 10:00", "2026-11-25 10:00", "2026-11-24 10:00", "2026-11-24 02:00"),
        id="keep-daily-unlimited",
    ),
    pytest.param(
        days("2026-11-27", 10),
        Policy(keep_last=0, keep_monthly=0, keep_daily=2),
        span("2026-11-27", 2),
        id="zero-turns-a-rule-off",
    ),
    pytest.param(
        [
            Candidate("a.sql.gz", at("2026-11-27"), True),
            Candidate("c.sql.gz", at("2026-11-25"), True),
            Candidate("b.sql.gz", at("2026-11-26"), True),
        ],
        Policy(keep_last=2),
        ["a.sql.gz", "b.sql.gz"],
        id="ordered-by-created-not-key",
    ),
    pytest.param(
        [Candidate("x1.sql.gz", at("2026-11-27"), True), Candidate("x2.sql.gz", at("2026-11-27"), True)],
        Policy(keep_last=1),
        ["x2.sql.gz"],
        id="equal-times-ordered-by-key-descending",
    ),
    pytest.param(
        [
            b("2026-11-27"),
            Candidate("late.sql.gz", at("2026-11-27 00:30").replace(tzinfo=PLUS2), True),
            b("2026-11-25"),
        ],
        Policy(keep_daily=2),
        [name("2026-11-27"), "late.sql.gz"],  # 00:30+02:00 is 26 Nov 22:30 UTC: a day of its own
        id="days-are-utc-days",
    ),
    pytest.param([], Policy.default(), [], id="no-backups"),
]


@pytest.mark.parametrize(("backups", "policy", "expected"), CASES)
def test_kept(backups: list[Candidate], policy: Policy, expected: list[str]) -> None:
    assert kept(backups, policy) == expected


# GFS over 400 daily backups, 2025-10-24 .. 2026-11-27. By hand, from the calendar:
#   daily 7    -> 2026-11-21 .. 2026-11-27
#   weekly 4   -> W48 Fri 11-27, W47 Sun 11-22, W46 Sun 11-15, W45 Sun 11-08 (only 11-15 and 11-08 are new)
#   monthly 6  -> last day of each month 2026-06 .. 2026-10, plus 11-27 for 2026-11
#   yearly 2   -> 11-27 for 2026, 2025-12-31 for 2025; every rule is used up before the oldest, 2025-10-24
GFS = Policy(keep_daily=7, keep_weekly=4, keep_monthly=6, keep_yearly=2)
GFS_KEPT = [
    *span("2026-11-27", 7),
    *keys("2026-11-15", "2026-11-08"),
    *keys("2026-10-31", "2026-09-30", "2026-08-31", "2026-07-31", "2026-06-30"),
    *keys("2025-12-31"),
]


def test_gfs_over_400_days() -> None:
    backups = days("2026-11-27", 400)
    assert backups[-1].key == name("2025-10-24")
    decisions = apply_policy(backups, GFS, NOW)
    assert summarize(decisions)[0] == GFS_KEPT
    assert reasons(decisions, "2026-11-27") == (
        "daily 2026-11-27",
        "weekly 2026-W48",
        "monthly 2026-11",
        "yearly 2026",
        "newest good backup",
    )
    assert reasons(decisions, "2026-11-22") == ("daily 2026-11-22", "weekly 2026-W47")
    assert reasons(decisions, "2026-11-15") == ("weekly 2026-W46",)
    assert reasons(decisions, "2026-10-31") == ("monthly 2026-10",)
    assert reasons(decisions, "2025-12-31") == ("yearly 2025",)
    assert reasons(decisions, "2025-10-24") == ("matched no rule",)


def test_gfs_yearly_slot_left_keeps_the_oldest() -> None:
    decisions = apply_policy(days("2026-11-27", 400), Policy(keep_yearly=3), NOW)
    assert summarize(decisions)[0] == keys("2026-11-27", "2025-12-31", "2025-10-24")
    assert reasons(decisions, "2025-10-24") == ("yearly 2025 (oldest)",)


def test_iso_week_belongs_to_its_iso_year() -> None:
    backups = [b("2027-01-02"), b("2026-12-28"), b("2026-12-27")]  # Sat and Mon of 2026-W53, Sun of W52
    decisions = apply_policy(backups, Policy(keep_weekly=2), at("2027-01-03"))
    assert summarize(decisions)[0] == keys("2027-01-02", "2026-12-27")
    assert reasons(decisions, "2027-01-02") == ("weekly 2026-W53", "newest good backup")


def test_reasons_explain_every_decision() -> None:
    backups = [b("2026-12-25"), broken("2026-11-27"), *days("2026-11-26", 4)]
    decisions = apply_policy(backups, Policy(keep_last=2, keep_min=3), NOW)
    assert decisions == [
        Decision(name("2026-12-25"), True, ("dated in the future",)),
        Decision(name("2026-11-27"), True, ("damaged or incomplete: never counted, left for a human",)),
        Decision(name("2026-11-26"), True, ("last 1", "newest good backup")),
        Decision(name("2026-11-25"), True, ("last 2", "minimum count")),
        Decision(name("2026-11-24"), True, ("minimum count",)),
        Decision(name("2026-11-23"), False, ("matched no rule",)),
    ]


def test_output_is_newest_first_whatever_the_input_order() -> None:
    backups = days("2026-11-27", 20)
    shuffled = random.Random(7).sample(backups, len(backups))
    decisions = apply_policy(shuffled, Policy.default(), NOW)
    assert [d.key for d in decisions] == [c.key for c in backups]
    assert summarize(decisions) == (span("2026-11-27", 14), [c.key for c in backups[14:]])


def test_policy_default_and_empty() -> None:
    assert Policy.default() == Policy(keep_last=14)
    assert not Policy.default().is_empty()
    assert not Policy(keep_yearly=-1).is_empty()
    assert Policy().is_empty()
    assert Policy(keep_last=0, keep_daily=0, keep_min=5).is_empty()


@pytest.mark.parametrize("policy", [Policy(), Policy(keep_last=0), Policy(keep_min=10)])
def test_empty_policy_is_refused(policy: Policy) -> None:
    with pytest.raises(UsageError, match="no keep rule"):
        policy.check()
    with pytest.raises(UsageError):
        apply_policy(days("2026-11-27", 3), policy, NOW)
    with pytest.raises(UsageError):
        apply_policy([], policy, NOW)


@pytest.mark.parametrize(
    "values",
    [
        {"keep_last": -2},
        {"keep_daily": -7},
        {"keep_weekly": "4"},
        {"keep_monthly": 1.5},
        {"keep_yearly": True},
        {"keep_last": 3, "keep_min": -1},
    ],
)
def test_bad_numbers_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(UsageError) as caught:
        Policy(**values)  # type: ignore[arg-type]
    assert caught.value.exit_code == 2
    assert caught.value.hint


def test_naive_times_are_refused() -> None:
    naive = Candidate("x.sql.gz", datetime(2026, 11, 27, 2, 0), True)
    with pytest.raises(ValueError, match="no time zone"):
        apply_policy([naive], Policy.default(), NOW)
    with pytest.raises(ValueError, match="no time zone"):
        apply_policy(days("2026-11-27", 2), Policy.default(), datetime(2026, 11, 27, 12, 0))
