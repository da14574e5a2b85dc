"""Status: is every series in the store (a database of a source) backed up recently, and did its last drill pass?

Derived from the store's catalog and the drill history only (this host's drill log and the drill records in
the store) (no state of its own), so it can run anywhere that can
read the store: on the database host from cron, on a monitoring host as a Nagios check. A database is CRITICAL
when its newest good backup is older than ``max_age`` (or it has none), when the store holds broken or
incomplete backups newer than its newest good one (a nightly that fails after writing something), or when its
last drill failed. A database never drilled is reported as such but not critical: drills are usually weekly.

WARNING (not critical, but not OK either) flags what needs a look without meaning that backups stopped: a set
dated in the future (a skewed clock or a forged manifest: it is never taken as the newest, and freshness is judged
by the earlier of a set's own date and the time the store received it), and leftovers of interrupted writes
(temporary files, unfinished uploads) that no running write owns any more: ``dbkeeper cleanup`` removes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dbkeeper import drill_log
from dbkeeper.repo import LeftoverState, Repository, catalog
from dbkeeper.repo.manifest import iso
from dbkeeper.units import compact_duration, format_duration, human_size

OK, WARNING, CRITICAL = "OK", "WARNING", "CRITICAL"


@dataclass
class DatabaseStatus:
    database: str  # the series' name: the source id (casino-eu), or casino-eu.globals
    now: datetime
    source_id: str = ""
    newest: catalog.Entry | None = None
    broken_since: list[catalog.Entry] = field(default_factory=list)
    future: list[catalog.Entry] = field(default_factory=list)
    last_drill: drill_log.Row | None = None
    problems: list[str] = field(default_factory=list)  # critical
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.warnings

    @property
    def state(self) -> str:
        return CRITICAL if self.problems else WARNING if self.warnings else OK

    def line(self) -> str:
        """One line for a human, cron mail or Nagios: ``OK casino: last backup 3h ago (12.3 MB), …``."""
        facts = []
        if self.newest is not None:
            facts.append(f"last backup {self._ago(self.newest.fresh_at)} ({human_size(self.newest.size)})")
        if self.last_drill is not None:
            facts.append(f"last drill {self.last_drill.result} {self._ago(self.last_drill.date)}")
        else:
            facts.append("never drilled")
        head = f"{self.state} {self.database}: "
        said = self.problems + self.warnings
        return head + ("; ".join(said) + "; " if said else "") + ", ".join(facts)

    def _ago(self, moment: datetime) -> str:
        return f"{format_duration(self.now - moment)} ago"

    def to_json(self) -> dict[str, Any]:
        newest = self.newest
        drill = self.last_drill
        return {
            "database": self.database,
            "source": self.source_id,
            "state": self.state,
            "ok": self.ok,
            "problems": self.problems,
            "warnings": self.warnings,
            "newest_backup": None
            if newest is None
            else {
                "name": newest.name,
                "created_at": iso(newest.created),
                "stored_at": iso(newest.stored),
                "age_seconds": int((self.now - newest.fresh_at).total_seconds()),
                "size_bytes": newest.size,
            },
            "broken_since": [{"name": e.name, "status": e.status, "problem": e.problem} for e in self.broken_since],
            "future": [{"name": e.name, "problem": e.problem} for e in self.future],
            "last_drill": None
            if drill is None
            else {
                "date": iso(drill.date),
                "result": drill.result,
                "backup": drill.backup or None,
                "restore_seconds": drill.restore_seconds,
                "anomalies": drill.anomalies or None,
            },
            "line": self.line(),
        }


@dataclass
class StatusReport:
    store: str
    max_age: timedelta
    drill_log: str
    databases: list[DatabaseStatus]
    leftovers: list[LeftoverState] = field(default_factory=list)  # stale ones only

    @property
    def ok(self) -> bool:
        return bool(self.databases) and all(d.ok for d in self.databases) and not self.leftovers

    @property
    def state(self) -> str:
        if not self.databases or any(d.state == CRITICAL for d in self.databases):
            return CRITICAL
        return OK if self.ok else WARNING

    def leftover_line(self) -> str:
        first = self.leftovers[0].describe()
        more = f" and {len(self.leftovers) - 1} more" if len(self.leftovers) > 1 else ""
        return (
            f"{WARNING} {self.store}: leftovers of interrupted writes: {first}{more} (`dbkeeper cleanup` removes them)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "state": self.state,
            "store": self.store,
            "max_age": compact_duration(self.max_age),
            "drill_log": self.drill_log,
            "databases": [d.to_json() for d in self.databases],
            "leftovers": [
                {
                    "kind": s.leftover.kind,
                    "name": s.leftover.name,
                    "size_bytes": s.leftover.size,
                    "age_seconds": int(s.age.total_seconds()),
                }
                for s in self.leftovers
            ],
        }


def check(
    repo: Repository,
    *,
    max_age: timedelta,
    drill_log_path: str | Path,
    now: datetime,
    source: str | None = None,
    database: str | None = None,
) -> StatusReport:
    """The status of every series in the store (or those of ``source``/``database``); none at all is not OK
    either."""
    found = repo.scan(now, source=source, database=database)
    drills = drill_log.history(drill_log_path, repo, source)
    report = StatusReport(repo.url, max_age, str(drill_log_path), [])
    for entries in found.series().values():
        report.databases.append(_judge(entries, drills, max_age, now))
    report.leftovers = [s for s in repo.leftovers(now) if s.stale]
    return report


def _judge(
    entries: list[catalog.Entry], drills: list[drill_log.Row], max_age: timedelta, now: datetime
) -> DatabaseStatus:
    name = entries[0].series_name
    status = DatabaseStatus(name, now, entries[0].source_id, last_drill=drill_log.last(drills, name))
    status.newest = catalog.newest_good(entries)
    if status.newest is None:
        status.problems.append("no good backup")
    elif now - status.newest.fresh_at > max_age:
        status.problems.append(f"newest backup older than {format_duration(max_age)}")
    status.broken_since = catalog.broken_since_good(entries)
    if status.broken_since and status.newest is not None:
        latest = status.broken_since[-1]
        status.problems.append(
            f"{len(status.broken_since)} failed backup(s) since the last good one ({latest.name}: {latest.problem})"
        )
    status.future = [e for e in entries if e.status == catalog.FUTURE]
    if status.future:
        first = status.future[-1]
        status.warnings.append(
            f"{len(status.future)} backup(s) dated in the future, not counted ({first.name}: {first.problem})"
        )
    if status.last_drill is not None and not status.last_drill.passed:
        why = status.last_drill.anomalies.split("; ")[0]
        status.problems.append(
            "last drill failed" + (f" ({why[:77] + '...' if len(why) > 80 else why})" if why else "")
        )
    return status
