"""``dbkeeper check``: does this server's WAL actually reach the archive? Ask the server, then prove it.

As pgBackRest's ``check`` does: create a named restore point, switch to a new segment, and wait (at most
``timeout``) until that segment is in the store, having passed through whatever archive_command really is. Also
read the settings that decide whether archiving works at all and whether the RPO is bounded: ``archive_mode``,
``wal_level``, ``archive_command`` (does it call ``dbkeeper wal-push`` for this source?), ``archive_library``,
``archive_timeout``. ``server_state`` is also what ``wal-verify --server`` asks.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dbkeeper.engines.postgres.conn import PgConn, quote_literal
from dbkeeper.engines.postgres.psql import query
from dbkeeper.errors import DbkeeperError
from dbkeeper.pitr import walfile
from dbkeeper.pitr.archive import WalArchive, WalMissing, archive_id
from dbkeeper.pitr.walverify import Server

MAX_ARCHIVE_TIMEOUT = 300  # seconds: beyond this an idle server's RPO is worse than the anchors' defaults


@dataclass(frozen=True)
class Settings:
    archive_mode: str
    archive_command: str
    archive_library: str
    wal_level: str
    archive_timeout: int  # seconds; 0 = off
    version_num: int
    sysid: int
    in_recovery: bool
    current_segment: str

    @property
    def archive_id(self) -> str:
        return archive_id(self.sysid, self.version_num // 10000)


def server_state(conn: PgConn, pg_bin: str | None = None) -> tuple[Settings, Server]:
    """The server's archiving settings, and its timeline, current segment and ``.ready`` files (those only when
    the role may list them: superuser or pg_monitor)."""
    row = query(
        conn,
        "SELECT current_setting('archive_mode'), current_setting('archive_command'),"
        " coalesce(current_setting('archive_library', true), ''), current_setting('wal_level'),"
        " (SELECT setting FROM pg_settings WHERE name = 'archive_timeout'), current_setting('server_version_num'),"
        " (SELECT system_identifier FROM pg_control_system()), pg_is_in_recovery(),"
        " CASE WHEN pg_is_in_recovery() THEN '' ELSE pg_walfile_name(pg_current_wal_lsn()) END,"
        " (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size')",
        pg_bin=pg_bin,
        doing="reading the archiving settings",
    )[0]
    settings = Settings(row[0], row[1], row[2], row[3], int(row[4]), int(row[5]), int(row[6]), row[7] == "t", row[8])
    ready: frozenset[str] = frozenset()
    try:
        rows = query(
            conn,
            "SELECT name FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
            pg_bin=pg_bin,
            doing="listing .ready files",
        )
        ready = frozenset(r[0].removesuffix(".ready") for r in rows)
    except DbkeeperError:
        pass  # not allowed to look: the backlog is then unknown, not empty
    name = walfile.WalName.parse(settings.current_segment) if settings.current_segment else None
    seg = int(row[9])
    server = Server(name.timeline if name else 0, name.segno(seg) if name else 0, ready)
    return settings, server


def sanity(settings: Settings, source_id: str) -> tuple[list[str], list[str]]:
    """(problems, warnings) of the settings themselves."""
    problems, warnings = [], []
    if settings.in_recovery:
        problems.append("the server is in recovery: check a primary (a standby archives only with archive_mode=always)")
    if settings.archive_mode not in ("on", "always"):
        problems.append(f"archive_mode is {settings.archive_mode}: set archive_mode = on (needs a restart)")
    if settings.wal_level == "minimal":
        problems.append("wal_level is minimal: set wal_level = replica (needs a restart)")
    if settings.archive_library:
        problems.append(f"archive_library is {settings.archive_library!r}: it replaces archive_command; set it to ''")
    command = settings.archive_command.strip()
    if not command or command == "(disabled)":
        problems.append("archive_command is empty: set archive_command = 'dbkeeper wal-push %p'")
    elif "wal-push" not in command:
        problems.append(f"archive_command {command!r} does not call dbkeeper wal-push")
    else:
        named = _source_in(command)
        if named is not None and named != source_id:
            problems.append(f"archive_command pushes to source {named!r}, not {source_id!r}")
        elif named is None:
            warnings.append(
                f"archive_command names no --source: its config's [pitr] source must be {source_id!r}"
                f" (add --source {source_id} to say so)"
            )
        if "%p" not in command:
            problems.append("archive_command does not pass %p (the file to archive)")
    if settings.archive_timeout == 0:
        warnings.append("archive_timeout is 0: on a quiet server the newest changes may never be archived")
    elif settings.archive_timeout > MAX_ARCHIVE_TIMEOUT:
        warnings.append(f"archive_timeout is {settings.archive_timeout}s: that is the RPO of a quiet server")
    return problems, warnings


def _source_in(command: str) -> str | None:
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    for i, word in enumerate(words):
        if word == "--source" and i + 1 < len(words):
            return words[i + 1]
        m = re.match(r"--source=(.+)", word)
        if m:
            return m.group(1)
    return None


@dataclass
class CheckReport:
    source_id: str
    settings: Settings
    restore_point: str = ""
    segment: str = ""
    archived_after: float | None = None  # seconds until the segment was in the store; None: it never came
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        s = self.settings
        return {
            "ok": self.ok,
            "source": self.source_id,
            "archive_id": s.archive_id,
            "restore_point": self.restore_point,
            "segment": self.segment,
            "archived_after_seconds": self.archived_after,
            "settings": {
                "archive_mode": s.archive_mode,
                "archive_command": s.archive_command,
                "archive_library": s.archive_library,
                "wal_level": s.wal_level,
                "archive_timeout_seconds": s.archive_timeout,
            },
            "problems": self.problems,
            "warnings": self.warnings,
        }


def daemon_disagrees(state: dict[str, Any] | None, source_id: str, store: str) -> list[str]:
    """Warnings when a running wal-daemon (its state in the spool) pushes elsewhere than this configuration says:
    wal-push answers from its acknowledgements without reading the configuration."""
    if not state or not state.get("running"):
        return []
    out = []
    if state.get("source") != source_id:
        out.append(f"the running wal-daemon pushes to source {state.get('source')!r}, not {source_id!r}")
    if state.get("store") != store:
        out.append(f"the running wal-daemon pushes to {state.get('store')}, not {store}")
    return out


def check(
    conn: PgConn,
    archive: WalArchive,
    *,
    timeout: float = 60.0,
    pg_bin: str | None = None,
    store: str = "",
    spool_root: str | None = None,
) -> CheckReport:
    from dbkeeper.pitr import spool

    settings, _server = server_state(conn, pg_bin)
    report = CheckReport(archive.source_id, settings)
    report.problems, report.warnings = sanity(settings, archive.source_id)
    state = spool.Spool(spool.root(spool_root), settings.archive_id).state()
    report.warnings += daemon_disagrees(state, archive.source_id, spool.store_key(store)) if store else []
    if settings.in_recovery:
        return report
    point = f"dbkeeper-check-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    report.restore_point = point
    report.segment = query(
        conn,
        f"SELECT pg_walfile_name(pg_create_restore_point({quote_literal(point)}))",
        pg_bin=pg_bin,
        doing="creating a restore point",
    )[0][0]
    query(conn, "SELECT pg_switch_wal()", pg_bin=pg_bin, doing="switching to a new WAL segment")
    t0 = time.monotonic()
    while True:
        try:
            archive.find(settings.archive_id, report.segment)
            report.archived_after = round(time.monotonic() - t0, 3)
            break
        except WalMissing:
            pass
        if time.monotonic() - t0 > timeout:
            where = archive.store.describe(archive.base(settings.archive_id))
            report.problems.append(
                f"{report.segment} (restore point {point}) did not reach {where} within {timeout:g}s:"
                " look at pg_stat_archiver and the server log for archive_command's errors"
            )
            break
        time.sleep(0.25)
    return report
