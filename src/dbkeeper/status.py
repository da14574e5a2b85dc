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
On the PostgreSQL servers it is given (the config's sources'), what killed restores left is a WARNING too, with what
settles it: a temporary database no running restore uses, and a database a ``--drop-existing`` restore renamed
aside (with the exact ``ALTER DATABASE … RENAME`` that puts it back when its target is missing). A server that
cannot be asked is a WARNING as well: status does not say "nothing left" about a server it could not see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dbkeeper import drill_log
from dbkeeper.engines import redact, server_leftovers
from dbkeeper.engines.postgres.leftovers import ServerLeftover
from dbkeeper.errors import DbkeeperError
from dbkeeper.pitr.health import Health, Survey
from dbkeeper.repo import LeftoverState, Repository, catalog
from dbkeeper.repo.manifest import iso
from dbkeeper.units import compact_duration, format_duration, human_size

OK, WARNING, CRITICAL, UNKNOWN = "OK", "WARNING", "CRITICAL", "UNKNOWN"  # Nagios's words (errors.NAGIOS)
DEFAULT_MAX_AGE = "26h"  # the newest good backup must be younger than this (a nightly, and two hours' slack)


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
            size = human_size(self.newest.size)
            facts.append(f"last backup {self._ago(self.newest.fresh_at)} ({size}, {self.newest_checked})")
        if self.last_drill is not None:
            facts.append(f"last drill {self.last_drill.result} {self._ago(self.last_drill.date)}")
        else:
            facts.append("never drilled")
        head = f"{self.state} {self.database}: "
        said = self.problems + self.warnings
        return head + ("; ".join(said) + "; " if said else "") + ", ".join(facts)

    @property
    def newest_checked(self) -> str:
        """How far the newest good backup is known to be good: ``drilled`` when the last drill restored that very
        set and passed, else ``unverified`` (the catalog saw its manifest, size and sidecar, not its bytes)."""
        drill, newest = self.last_drill, self.newest
        if newest is not None and drill is not None and drill.passed and drill.backup == newest.name:
            return "drilled"
        return catalog.UNVERIFIED

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
                "state": self.newest_checked,
                "checked": list(newest.checked),
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


PITR_DRILL_SUFFIX = " (PITR)"  # a point-in-time drill's name in the drill log: the source id, then this
DEFAULT_MAX_WAL_AGE = timedelta(minutes=5)
DEFAULT_MAX_BASE_AGE = timedelta(days=8)  # a weekly full base backup, and a day to notice that one failed


@dataclass
class PitrStatus:
    """One source's WAL archive: CRITICAL for LOST segments, different contents under one name or a broken
    history (a restore would stop there or go wrong); WARNING when the newest archived segment, or the oldest
    file still waiting to be archived, is older than ``max_wal_age`` (archiving stalled: the RPO grows), and for
    a last PITR drill that failed. A source with no good base backup is CRITICAL (no restore to any point is
    possible, as for a database with no backup); one whose newest is older than ``max_base_age`` is a WARNING
    (restores replay ever more WAL, and the WAL kept for it grows), as Barman's ``last_backup_maximum_age``."""

    health: Health
    now: datetime
    max_wal_age: timedelta
    last_drill: drill_log.Row | None = None
    max_base_age: timedelta = DEFAULT_MAX_BASE_AGE
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        return CRITICAL if self.problems else WARNING if self.warnings else OK

    @property
    def ok(self) -> bool:
        return not self.problems and not self.warnings

    @property
    def wal_age(self) -> timedelta | None:
        last = self.health.last_archived
        return self.now - last if last else None

    def line(self) -> str:
        h = self.health
        facts = []
        age = self.wal_age
        facts.append(f"last WAL archived {format_duration(age)} ago" if age is not None else "no WAL archived")
        if h.backlog is not None:
            facts.append(h.backlog.describe())
        base = self.health.newest_base
        if base is not None and base.stop_time is not None:
            facts.append(f"newest base backup {format_duration(self.now - base.stop_time)} ago")
        w = h.report.window
        facts.append(
            f"window {format_duration(w.end - w.start)}" if w is not None else f"no PITR window ({h.no_window})"
        )
        if self.last_drill is not None:
            facts.append(
                f"last PITR drill {self.last_drill.result} {format_duration(self.now - self.last_drill.date)} ago"
            )
        said = self.problems + self.warnings
        head = f"{self.state} {h.source_id} WAL ({h.archive_id}): "
        return head + ("; ".join(said) + "; " if said else "") + ", ".join(facts)

    def to_json(self) -> dict[str, Any]:
        h = self.health
        w = h.report.window
        age = self.wal_age
        drill = self.last_drill
        base = self.health.newest_base
        return {
            "source": h.source_id,
            "archive_id": h.archive_id,
            "state": self.state,
            "ok": self.ok,
            "problems": self.problems,
            "warnings": self.warnings,
            "last_archived": None
            if h.report.newest is None
            else {
                "file": h.report.newest.name.text,
                "stored_at": iso(h.last_archived) if h.last_archived else None,
                "age_seconds": int(age.total_seconds()) if age is not None else None,
            },
            "backlog": h.backlog.to_json() if h.backlog else None,
            "newest_base_backup": None
            if base is None or base.stop_time is None
            else {
                "id": base.id,
                "stop_time": iso(base.stop_time),
                "age_seconds": int((self.now - base.stop_time).total_seconds()),
            },
            "gaps": {"lost": h.report.lost, "delayed": h.report.delayed},
            "window": {"start": iso(w.start) if w else None, "end": iso(w.end) if w else None},
            "last_pitr_drill": None
            if drill is None
            else {"date": iso(drill.date), "result": drill.result, "restore_seconds": drill.restore_seconds},
            "line": self.line(),
        }


def judge_pitr(
    health: Health,
    drills: list[drill_log.Row],
    max_wal_age: timedelta,
    now: datetime,
    max_base_age: timedelta = DEFAULT_MAX_BASE_AGE,
) -> PitrStatus:
    last_drill = drill_log.last(drills, health.source_id + PITR_DRILL_SUFFIX)
    status = PitrStatus(health, now, max_wal_age, last_drill, max_base_age=max_base_age)
    status.problems += health.report.problems
    base = health.newest_base
    if base is None or base.stop_time is None:
        status.problems.append("no good base backup: no point-in-time restore is possible (run dbkeeper basebackup)")
    elif now - base.stop_time > max_base_age:
        status.warnings.append(f"newest base backup older than {format_duration(max_base_age)}")
    age = status.wal_age
    if age is None:
        status.problems.append("no WAL segment archived")
    elif age > max_wal_age:
        status.warnings.append(f"newest archived WAL older than {format_duration(max_wal_age)}")
    b = health.backlog
    if b is not None and b.oldest_seconds > max_wal_age.total_seconds():
        oldest = format_duration(timedelta(seconds=b.oldest_seconds))
        status.warnings.append(f"{b.files} WAL file(s) waiting to be archived, the oldest for {oldest}")
    if status.last_drill is not None and not status.last_drill.passed:
        status.warnings.append("last PITR drill failed")
    return status


@dataclass
class StatusReport:
    store: str
    max_age: timedelta
    drill_log: str
    databases: list[DatabaseStatus]
    leftovers: list[LeftoverState] = field(default_factory=list)  # stale ones only
    server_leftovers: list[ServerLeftover] = field(default_factory=list)  # those that need a look only
    server_errors: list[str] = field(default_factory=list)  # servers that could not be asked
    pitr: list[PitrStatus] = field(default_factory=list)
    pitr_errors: list[tuple[str, str]] = field(default_factory=list)  # (source, why) of archives that do not read
    refused_drills: int = 0  # drill records in the store a verify key does not believe

    @property
    def ok(self) -> bool:
        clean = not self.leftovers and not self.server_leftovers and not self.server_errors and not self.refused_drills
        return (
            bool(self.databases or self.pitr)
            and not self.pitr_errors
            and all(d.ok for d in self.databases)
            and all(p.ok for p in self.pitr)
            and clean
        )

    @property
    def state(self) -> str:
        states = [d.state for d in self.databases] + [p.state for p in self.pitr]
        if not states or CRITICAL in states or self.pitr_errors:
            return CRITICAL
        return OK if self.ok else WARNING

    def leftover_line(self) -> str:
        first = self.leftovers[0].describe()
        more = f" and {len(self.leftovers) - 1} more" if len(self.leftovers) > 1 else ""
        return (
            f"{WARNING} {self.store}: leftovers of interrupted writes: {first}{more} (`dbkeeper cleanup` removes them)"
        )

    def pitr_error_lines(self) -> list[str]:
        return [
            f"{CRITICAL} {source} WAL: its archive does not read: {why} (`dbkeeper wal-verify --source {source}`)"
            for source, why in self.pitr_errors
        ]

    def refused_drills_line(self) -> str:
        return (
            f"{WARNING} {self.store}: {self.refused_drills} drill record(s) not signed by the verify key, not believed"
            " (a drill host without the [signing] key, or a forged record)"
        )

    def server_lines(self) -> list[str]:
        """One WARNING line per server leftover, with what settles it, and per server that could not be asked."""
        lines = [f"{WARNING} restore leftover: {lo.describe()}; {lo.fix()}" for lo in self.server_leftovers]
        return lines + [f"{WARNING} {error}" for error in self.server_errors]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "state": self.state,
            "store": self.store,
            "max_age": compact_duration(self.max_age),
            "drill_log": self.drill_log,
            "databases": [d.to_json() for d in self.databases],
            "pitr": [p.to_json() for p in self.pitr],
            "pitr_errors": [{"source": source, "error": why} for source, why in self.pitr_errors],
            "leftovers": [
                {
                    "kind": s.leftover.kind,
                    "name": s.leftover.name,
                    "size_bytes": s.leftover.size,
                    "age_seconds": int(s.age.total_seconds()),
                }
                for s in self.leftovers
            ],
            "server_leftovers": [
                {
                    "kind": lo.kind,
                    "name": lo.name,
                    "server": lo.server,
                    "size_bytes": lo.size,
                    "created_at": iso(lo.created) if lo.created else None,
                    "target": lo.target,
                    "describe": lo.describe(),
                    "fix": lo.fix(),
                }
                for lo in self.server_leftovers
            ],
            "server_errors": self.server_errors,
            "refused_drill_records": self.refused_drills,
        }


def check(
    repo: Repository,
    *,
    max_age: timedelta,
    drill_log_path: str | Path,
    now: datetime,
    source: str | None = None,
    database: str | None = None,
    servers: Sequence[str] = (),
    pg_bin: str | None = None,
    pitr: Survey | None = None,
    max_wal_age: timedelta = DEFAULT_MAX_WAL_AGE,
    max_base_age: timedelta = DEFAULT_MAX_BASE_AGE,
) -> StatusReport:
    """The status of every series in the store (or those of ``source``/``database``), of the WAL archives in
    ``pitr`` (pitr.health), and what killed restores left on the PostgreSQL ``servers`` (URLs); none at all is not
    OK either."""
    repo.require_store()
    found = repo.scan(now, source=source, database=database)
    stored = repo.drill_records(source)
    drills = drill_log.history(drill_log_path, stored.records)
    report = StatusReport(repo.url, max_age, str(drill_log_path), [], refused_drills=stored.refused)
    for entries in found.series().values():
        report.databases.append(_judge(entries, drills, max_age, now))
    if pitr is not None:
        report.pitr = [judge_pitr(h, drills, max_wal_age, now, max_base_age) for h in pitr.found]
        report.pitr_errors = list(pitr.errors)
    report.leftovers = [s for s in repo.leftovers(now) if s.stale]
    report.server_leftovers, report.server_errors = look_on_servers(servers, now, pg_bin=pg_bin)
    return report


def look_on_servers(
    servers: Sequence[str], now: datetime, *, pg_bin: str | None = None
) -> tuple[list[ServerLeftover], list[str]]:
    """What killed restores left on each server that needs a look (engines' ``server_leftovers``), and one line
    for each server that could not be asked."""
    found: list[ServerLeftover] = []
    errors: list[str] = []
    for url in servers:
        try:
            found += [lo for lo in server_leftovers(url, pg_bin=pg_bin) if lo.needs_a_look(now)]
        except DbkeeperError as exc:
            errors.append(f"{redact(url)}: cannot look for restores' leftovers ({exc.message})")
    return found, errors


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
