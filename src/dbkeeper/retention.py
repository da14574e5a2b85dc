"""Which backups of one database to keep: restic's ``forget`` policy as a pure function that explains itself.

``apply_policy(backups, policy, now)`` returns one Decision per backup, newest first, with every reason it is
kept. It reads no clock and touches no store: ``prune --dry-run`` prints the decisions, ``prune`` deletes the
removed keys. The caller passes the backups of ONE database (group first) and ``now`` from its own clock.

The rules are restic's (``internal/restic/snapshot_policy.go``), in UTC:

- Backups are ordered newest first by ``created`` (the manifest's time, never the file name); equal times by
  their number within the second (``seq``), then by key, descending, so the result never depends on the order
  of the input.
- ``keep_last N`` keeps the N newest. ``keep_daily N`` keeps the newest backup of each of the N most recent
  calendar days *that have a backup*: a day without backups uses no slot. Weekly (ISO week, ``%G-W%V``),
  monthly and yearly work the same way. ``-1`` keeps one in every period; ``None`` or ``0`` turns a rule off.
- The rules are ORed; a backup kept by several rules lists every reason ("last 3", "daily 2026-11-27",
  "weekly 2026-W48", "monthly 2026-11", "yearly 2026").
- As in restic, a period rule that still has slots left when it reaches the oldest backup keeps that one too
  (reason "... (oldest)"), so while the history is shorter than the policy, its far end is not thrown away.

Safety on top of restic:

- Only good backups (manifest present, checksums fine) count toward any rule. The others are always kept and
  never counted: deleting what nobody could read is a decision for a human.
- Backups created after ``now`` are kept and not counted: a skewed clock must not push real backups out.
- The newest good backup is always kept, and so are the ``keep_min`` newest good backups.
- A policy without any rule is refused with UsageError, as restic refuses ``forget`` without a policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from dbkeeper.errors import UsageError

UNLIMITED = -1

DAMAGED = "damaged or incomplete: never counted, left for a human"
FUTURE = "dated in the future"
NEWEST = "newest good backup"
MINIMUM = "minimum count"
NO_RULE = "matched no rule"

_RULES = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")

# Each period rule buckets backups by a label of their UTC time; the label is also what its reason shows.
_PERIODS: dict[str, Callable[[datetime], str]] = {
    "daily": lambda t: t.strftime("%Y-%m-%d"),
    "weekly": lambda t: t.strftime("%G-W%V"),
    "monthly": lambda t: t.strftime("%Y-%m"),
    "yearly": lambda t: t.strftime("%Y"),
}


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Policy:
    """How many backups each rule keeps: a count, -1 for unlimited, None or 0 for off."""

    keep_last: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None
    keep_min: int = 1

    def __post_init__(self) -> None:
        for name in _RULES:
            value = getattr(self, name)
            if value is not None and (not _is_count(value) or value < UNLIMITED):
                raise UsageError(
                    f"{name} must be a count (0 or more) or -1 for unlimited, not {value!r}",
                    hint=f"{name} = 7, or -1 to keep one backup in every period",
                )
        if not _is_count(self.keep_min) or self.keep_min < 0:
            raise UsageError(
                f"keep_min must be a count (0 or more), not {self.keep_min!r}",
                hint="keep_min = 1 keeps at least the newest good backup",
            )

    @classmethod
    def default(cls) -> Policy:
        return cls(keep_last=14)

    def is_empty(self) -> bool:
        """True when no rule is on: such a policy would keep only the safety floor."""
        return not any(getattr(self, name) for name in _RULES)

    def check(self) -> None:
        """Refuse a policy without rules, as restic does, rather than delete all but the newest backups."""
        if self.is_empty():
            raise UsageError(
                "the retention policy has no keep rule, so it cannot decide what to remove",
                hint="--keep-last 14, or keep_last = 14 under [retention] in dbkeeper.toml",
            )


@dataclass(frozen=True)
class Candidate:
    key: str  # the backup's name
    created: datetime  # aware, from the manifest
    good: bool  # complete and verified
    seq: int = 1  # its number within its start second: of two sets of one second, the higher is newer


@dataclass(frozen=True)
class Decision:
    key: str
    keep: bool
    reasons: tuple[str, ...]


def apply_policy(backups: Sequence[Candidate], policy: Policy, now: datetime) -> list[Decision]:
    """One Decision per backup, newest first. UsageError for an empty policy; ValueError for a naive time."""
    policy.check()
    _require_aware("now", now)
    for backup in backups:
        _require_aware(backup.key, backup.created)
    ordered = sorted(backups, key=lambda b: (b.created, b.seq, b.key), reverse=True)
    reasons: list[list[str]] = [[] for _ in ordered]
    counted: list[int] = []  # indexes into ordered of the backups the rules see
    for i, backup in enumerate(ordered):
        if backup.created > now:
            reasons[i].append(FUTURE)
        if not backup.good:
            reasons[i].append(DAMAGED)
        if backup.good and backup.created <= now:
            counted.append(i)
    times = [ordered[i].created.astimezone(UTC) for i in counted]
    for name, count, period in _active_rules(policy):
        for n, label in _walk(times, count, period):
            reasons[counted[n]].append(f"{name} {label}")
    if counted:
        reasons[counted[0]].append(NEWEST)
        for i in counted[1 : policy.keep_min]:
            reasons[i].append(MINIMUM)
    return [
        Decision(b.key, bool(why), tuple(why) if why else (NO_RULE,)) for b, why in zip(ordered, reasons, strict=True)
    ]


def summarize(decisions: Iterable[Decision]) -> tuple[list[str], list[str]]:
    """The kept keys and the removed keys, each in the order of the decisions."""
    kept: list[str] = []
    removed: list[str] = []
    for decision in decisions:
        (kept if decision.keep else removed).append(decision.key)
    return kept, removed


def _active_rules(policy: Policy) -> Iterator[tuple[str, int, Callable[[datetime], str] | None]]:
    if policy.keep_last:
        yield "last", policy.keep_last, None
    for name, period in _PERIODS.items():
        count = getattr(policy, f"keep_{name}")
        if count:
            yield name, count, period


def _walk(times: list[datetime], count: int, period: Callable[[datetime], str] | None) -> Iterator[tuple[int, str]]:
    """restic's bucket walk over newest-first times: (position, label) of each backup one rule keeps."""
    left = count
    previous: str | None = None
    for n, moment in enumerate(times):
        if left == 0:
            return
        if period is None:
            label = str(n + 1)
        else:
            label = period(moment)
            if label == previous:
                if n < len(times) - 1:
                    continue
                label += " (oldest)"
            previous = label
        yield n, label
        if left > 0:
            left -= 1


def _require_aware(what: str, moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what}: {moment.isoformat()} has no time zone; retention needs aware UTC times")
