"""Status: is every database in the store backed up recently, and did its last drill pass?

Derived from the store's catalog and the drill log only (no state of its own), so it can run anywhere that can
read the store: on the database host from cron, on a monitoring host as a Nagios check. A database is CRITICAL
when its newest good backup is older than ``max_age`` (or it has none), when the store holds broken or
incomplete backups newer than its newest good one (a nightly that fails after writing something), or when its
last drill failed. A database never drilled is reported as such but not critical: drills are usually weekly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dbkeeper import catalog, drill_log, manifest
from dbkeeper.storage import Store
from dbkeeper.units import compact_duration, format_duration, human_size

OK, CRITICAL = "OK", "CRITICAL"


@dataclass
class DatabaseStatus:
    database: str
    now: datetime
    newest: catalog.Entry | None = None
    broken_since: list[catalog.Entry] = field(default_factory=list)
    last_drill: drill_log.Row | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def state(self) -> str:
        return OK if self.ok else CRITICAL

    def line(self) -> str:
        """One line for a human, cron mail or Nagios: ``OK casino: last backup 3h ago (12.3 MB), …``."""
        facts = []
        if self.newest is not None:
            facts.append(f"last backup {self._ago(self.newest.created)} ({human_size(self.newest.size)})")
        if self.last_drill is not None:
            facts.append(f"last drill {self.last_drill.result} {self._ago(self.last_drill.date)}")
        else:
            facts.append("never drilled")
        head = f"{self.state} {self.database}: "
        return head + ("; ".join(self.problems) + "; " if self.problems else "") + ", ".join(facts)

    def _ago(self, moment: datetime) -> str:
        return f"{format_duration(self.now - moment)} ago"

    def to_json(self) -> dict[str, Any]:
        newest = self.newest
        drill = self.last_drill
        return {
            "database": self.database,
            "state": self.state,
            "ok": self.ok,
            "problems": self.problems,
            "newest_backup": None
            if newest is None
            else {
                "name": newest.name,
                "created_at": manifest.iso(newest.created),
                "age_seconds": int((self.now - newest.created).total_seconds()),
                "size_bytes": newest.size,
            },
            "broken_since": [{"name": e.name, "status": e.status, "problem": e.problem} for e in self.broken_since],
            "last_drill": None
            if drill is None
            else {
                "date": manifest.iso(drill.date),
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

    @property
    def ok(self) -> bool:
        return bool(self.databases) and all(d.ok for d in self.databases)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "store": self.store,
            "max_age": compact_duration(self.max_age),
            "drill_log": self.drill_log,
            "databases": [d.to_json() for d in self.databases],
        }


def check(
    store: Store,
    *,
    max_age: timedelta,
    drill_log_path: str | Path,
    now: datetime,
    database: str | None = None,
) -> StatusReport:
    """The status of every database in the store (or ``database``); none at all is not OK either."""
    entries = catalog.scan(store, database)
    names = sorted({e.database for e in entries})
    drills = drill_log.read(drill_log_path)
    report = StatusReport(store.url, max_age, str(drill_log_path), [])
    for name in names:
        report.databases.append(_judge(name, [e for e in entries if e.database == name], drills, max_age, now))
    return report


def _judge(
    name: str, entries: list[catalog.Entry], drills: list[drill_log.Row], max_age: timedelta, now: datetime
) -> DatabaseStatus:
    status = DatabaseStatus(name, now, last_drill=drill_log.last(drills, name))
    status.newest = catalog.newest_good(entries)
    if status.newest is None:
        status.problems.append("no good backup")
    elif now - status.newest.created > max_age:
        status.problems.append(f"newest backup older than {format_duration(max_age)}")
    status.broken_since = catalog.broken_since_good(entries)
    if status.broken_since and status.newest is not None:
        latest = status.broken_since[-1]
        status.problems.append(
            f"{len(status.broken_since)} failed backup(s) since the last good one ({latest.name}: {latest.problem})"
        )
    if status.last_drill is not None and not status.last_drill.passed:
        why = status.last_drill.anomalies.split("; ")[0]
        status.problems.append(
            "last drill failed" + (f" ({why[:77] + '...' if len(why) > 80 else why})" if why else "")
        )
    return status
