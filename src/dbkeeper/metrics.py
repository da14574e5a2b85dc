"""Prometheus metrics for node_exporter's textfile collector, derived from the store and the drill log.

``write`` renders the text exposition format (``# HELP``/``# TYPE``, escaped labels) and replaces the file
atomically: temporary file in the same directory, fsync, rename, fsync the directory, so the collector never
reads half a file. The temporary name does not end ``.prom`` and is never collected.

Everything comes from the catalog (the newest good backup's manifest per series: labels ``source`` and
``database``) and the drill log, so the
numbers are the same whichever host writes them and whenever. A timestamp of a thing that never happened is 0,
so that ``time() - dbkeeper_backup_last_success_timestamp_seconds > 26 * 3600`` fires for a database whose
backups all failed. There is no ``last_failure`` metric: a failed backup leaves nothing in the store by design,
so it cannot be derived honestly; alert on the age of the last success instead (it covers every failure), and
on ``dbkeeper_backup_broken_since_last_success`` for failures that did leave a broken entry behind.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dbkeeper import drill_log
from dbkeeper.engines import server_key, server_leftovers
from dbkeeper.engines.postgres.leftovers import REPLACED, TEMPORARY
from dbkeeper.errors import DbkeeperError
from dbkeeper.fsutil import write_atomic
from dbkeeper.repo import Repository, catalog

if TYPE_CHECKING:
    from dbkeeper.pitr.health import Survey

Labels = dict[str, str]


@dataclass
class Family:
    name: str
    help: str
    type: str = "gauge"
    samples: list[tuple[Labels, float]] = field(default_factory=list)


def collect(
    repo: Repository,
    drill_log_path: str | Path,
    now: datetime | None = None,
    *,
    servers: Sequence[str] = (),
    pg_bin: str | None = None,
    pitr: Survey | None = None,
) -> list[Family]:
    """The families of the store's series, of its WAL archives (``pitr``, as pitr.health's ``survey`` reads them;
    read here when not given), and of what killed restores left on the PostgreSQL ``servers``."""
    now = now or datetime.now(UTC)
    found = repo.scan(now)
    drills = drill_log.history(drill_log_path, repo.drill_records().records)
    fam = {
        f.name: f
        for f in [
            Family(
                "dbkeeper_backup_last_success_timestamp_seconds",
                "Completion time of the newest good backup (Unix time; 0: none).",
            ),
            Family("dbkeeper_backup_duration_seconds", "How long the newest good backup took."),
            Family("dbkeeper_backup_size_bytes", "Stored size of the newest good backup."),
            Family("dbkeeper_backup_rows", "Rows in the newest good backup (sum over its tables)."),
            Family(
                "dbkeeper_backup_broken_since_last_success",
                "Broken or incomplete backups newer than the newest good one.",
            ),
            Family(
                "dbkeeper_drill_last_success_timestamp_seconds",
                "Start time of the last drill that passed (Unix time; 0: none).",
            ),
            Family("dbkeeper_drill_duration_seconds", "Whole duration of the last drill that passed."),
            Family(
                "dbkeeper_drill_restore_seconds",
                "Restore time (verify, load, row counts) of the last drill that passed.",
            ),
            Family("dbkeeper_drill_last_passed", "1 if the last drill passed, 0 if it failed; absent: never drilled."),
            Family(
                "dbkeeper_backup_future_dated",
                "Backups dated more than 5 minutes in the future (a skewed clock or a forged manifest); not counted.",
            ),
            Family(
                "dbkeeper_wal_last_archived_timestamp_seconds",
                "When the store received the newest archived WAL segment (Unix time; 0: none): time() minus this"
                " is the live RPO.",
            ),
            Family(
                "dbkeeper_wal_archive_backlog_files",
                "WAL files PostgreSQL has finished and not yet seen archived (.ready), as the data directory or the"
                " WAL daemon says; absent: unknown here.",
            ),
            Family("dbkeeper_wal_archive_backlog_bytes", "Bytes of the .ready WAL files."),
            Family(
                "dbkeeper_wal_archive_backlog_oldest_seconds",
                "How long the oldest .ready WAL file has waited to be archived.",
            ),
            Family(
                "dbkeeper_wal_gap_segments",
                "Segments missing from the WAL archive, by state: lost (a hole before newer segments) or delayed.",
            ),
            Family(
                "dbkeeper_wal_archive_unreadable",
                "1 for a source whose WAL archive could not be read (a damaged archive.json, a store error).",
            ),
            Family(
                "dbkeeper_wal_conflicts",
                "WAL files archived more than once with different contents, and timeline history problems.",
            ),
            Family(
                "dbkeeper_pitr_window_start_seconds",
                "The earliest time a point-in-time restore can reach: the oldest base backup's end (Unix time).",
            ),
            Family(
                "dbkeeper_pitr_base_backup_last_seconds",
                "When the newest good base backup ended (Unix time); absent when there is none.",
            ),
            Family(
                "dbkeeper_pitr_window_end_seconds",
                "The latest time a point-in-time restore can reach: the newest archived segment's arrival (Unix time).",
            ),
            Family(
                "dbkeeper_store_leftovers",
                "Leftovers of interrupted writes that no running write owns (dbkeeper cleanup removes them).",
            ),
            Family(
                "dbkeeper_server_restore_leftovers",
                "Databases killed restores left on a PostgreSQL server (as dbkeeper status reports them): temporary"
                " ones no restore uses, and ones renamed aside; absent for a server that could not be asked.",
            ),
        ]
    }

    def put(name: str, labels: Labels, value: float | None) -> None:
        if value is not None:
            fam[name].samples.append((labels, float(value)))

    for mine in found.series().values():
        db = mine[0].series_name
        labels = {"source": mine[0].source_id, "database": mine[0].label}
        entry = catalog.newest_good(mine)
        newest = entry.manifest if entry else None
        # The store's clock bounds the backup host's: a completion time later than the store received it is not
        # believed.
        done = min(newest.completed, entry.stored).timestamp() if entry and newest else 0
        put("dbkeeper_backup_last_success_timestamp_seconds", labels, done)
        if newest is not None:
            put("dbkeeper_backup_duration_seconds", labels, newest.duration_s)
            put("dbkeeper_backup_size_bytes", labels, newest.size_bytes)
            put("dbkeeper_backup_rows", labels, sum(newest.row_counts.values()))
        put("dbkeeper_backup_broken_since_last_success", labels, len(catalog.broken_since_good(mine)))
        put("dbkeeper_backup_future_dated", labels, sum(e.status == catalog.FUTURE for e in mine))
        passed = drill_log.last(drills, db, passed=True)
        latest = drill_log.last(drills, db)
        put("dbkeeper_drill_last_success_timestamp_seconds", labels, passed.date.timestamp() if passed else 0)
        if passed is not None:
            put("dbkeeper_drill_duration_seconds", labels, passed.total_seconds)
            put("dbkeeper_drill_restore_seconds", labels, passed.restore_seconds)
        if latest is not None:
            put("dbkeeper_drill_last_passed", labels, 1 if latest.passed else 0)
    _pitr(repo, now, put, pitr)
    put("dbkeeper_store_leftovers", {"store": repo.url}, sum(s.stale for s in repo.leftovers(now)))
    for url in servers:
        try:
            left = [lo for lo in server_leftovers(url, pg_bin=pg_bin) if lo.needs_a_look(now)]
        except DbkeeperError:
            continue  # absent: the alert on absent() or on status's exit says so
        for kind in (TEMPORARY, REPLACED):
            labels = {"server": server_key(url), "kind": kind.split()[0]}
            put("dbkeeper_server_restore_leftovers", labels, sum(lo.kind == kind for lo in left))
    return [f for f in fam.values() if f.samples]


def _pitr(
    repo: Repository, now: datetime, put: Callable[[str, Labels, float | None], None], pitr: Survey | None
) -> None:
    """One set of samples per source with a WAL archive (its newest archive), labels ``source`` and
    ``archive_id``; the backlog from the WAL daemon's state in the default spool, when it runs on this host."""
    from dbkeeper.pitr.health import survey

    found = survey(repo.store, now=now, verify_key=repo.verify_key) if pitr is None else pitr
    for source, _why in found.errors:
        put("dbkeeper_wal_archive_unreadable", {"source": source}, 1)
    for h in found.found:
        source = h.source_id
        labels = {"source": source, "archive_id": h.archive_id}
        last = h.last_archived
        put("dbkeeper_wal_last_archived_timestamp_seconds", labels, last.timestamp() if last else 0)
        if h.backlog is not None:
            put("dbkeeper_wal_archive_backlog_files", labels, h.backlog.files)
            put("dbkeeper_wal_archive_backlog_bytes", labels, h.backlog.bytes)
            put("dbkeeper_wal_archive_backlog_oldest_seconds", labels, h.backlog.oldest_seconds)
        put("dbkeeper_wal_gap_segments", {**labels, "state": "lost"}, len(h.report.lost))
        put("dbkeeper_wal_gap_segments", {**labels, "state": "delayed"}, len(h.report.delayed))
        put("dbkeeper_wal_conflicts", labels, len(h.report.conflicts) + len(h.report.history_problems))
        base = h.newest_base
        if base is not None and base.stop_time is not None:
            put("dbkeeper_pitr_base_backup_last_seconds", labels, base.stop_time.timestamp())
        if h.report.window is not None:
            put("dbkeeper_pitr_window_start_seconds", labels, h.report.window.start.timestamp())
            put("dbkeeper_pitr_window_end_seconds", labels, h.report.window.end.timestamp())


def render(families: Iterable[Family]) -> str:
    lines = []
    for f in families:
        lines.append(f"# HELP {f.name} {_escape_help(f.help)}")
        lines.append(f"# TYPE {f.name} {f.type}")
        for labels, value in f.samples:
            inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
            lines.append(f"{f.name}{{{inner}}} {_value(value)}" if inner else f"{f.name} {_value(value)}")
    return "\n".join(lines) + "\n"


def write(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically; readable by others (node_exporter runs as its own user)."""
    path = Path(path)
    try:
        write_atomic(path, text.encode(), 0o644)
    except OSError as exc:
        raise DbkeeperError(
            f"cannot write the metrics file {path}: {exc.strerror or exc}",
            "point --metrics-file (config metrics_file) into a writable directory, e.g. node_exporter's"
            " --collector.textfile.directory",
        ) from exc


def update(
    path: str | Path,
    repo: Repository,
    drill_log_path: str | Path,
    *,
    servers: Sequence[str] = (),
    pg_bin: str | None = None,
) -> None:
    """Collect, render and write in one go: what ``backup`` and ``drill`` call after a run."""
    write(path, render(collect(repo, drill_log_path, servers=servers, pg_bin=pg_bin)))


def _value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
