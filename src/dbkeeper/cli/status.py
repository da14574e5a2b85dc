"""dbkeeper status: one line per series (a database of a source), OK, WARNING or CRITICAL, with Nagios's exit
codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (status could not look: a usage error, a missing store)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dbkeeper.cli.common import (
    add_json,
    add_selection,
    add_spool,
    add_store,
    add_verify_key,
    drill_log_path,
    emit_json,
    identities,
    load_config,
    open_repo_for,
    pg_servers,
    print_error,
    store_url,
)
from dbkeeper.errors import NAGIOS, DbkeeperError
from dbkeeper.status import DEFAULT_MAX_AGE, DEFAULT_MAX_BASE_AGE, DEFAULT_MAX_WAL_AGE, UNKNOWN, check
from dbkeeper.units import parse_duration

if TYPE_CHECKING:
    from dbkeeper.pitr.health import Survey


def register(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="is every database backed up recently and drilled? (for cron and monitoring)",
        description="For each database of each source in the store: its newest good backup, that backup's age and"
        " size, and the last drill from the drill log, as one line 'OK|WARNING|CRITICAL source: …'."
        " CRITICAL when the newest good backup is older than --max-age, when broken backups are newer than it (a"
        " failing nightly), or when the last drill failed; WARNING for backups dated in the future and for"
        " leftovers of interrupted writes (`dbkeeper cleanup`), and for what killed restores left on"
        " the servers of the config's PostgreSQL sources (temporary databases; a database renamed aside, with the"
        " ALTER DATABASE that puts it back). A backup is 'unverified' until a drill restored"
        " it (`dbkeeper verify` reads one whole). Exit codes as Nagios reads them: 0 OK, 1 WARNING, 2 CRITICAL,"
        " 3 UNKNOWN (the check itself could not run: bad options or config, a store that does not exist).",
    )
    add_store(p)
    add_verify_key(p)
    add_selection(p)
    p.add_argument(
        "--max-age", metavar="AGE", help=f"the newest backup must be younger than this (default {DEFAULT_MAX_AGE})"
    )
    p.add_argument(
        "--drill-log",
        metavar="FILE",
        help="this host's drill log to read besides the drill records in the store (default: config [drill] log,"
        " else DR_DRILL_LOG.md in the state directory)",
    )
    p.add_argument(
        "--max-wal-age",
        metavar="AGE",
        help="WARNING when the newest archived WAL or the oldest waiting one is older (default: config [pitr]"
        " max_wal_age, else 5m)",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="a PITR source's data directory, to count its .ready backlog (else the WAL daemon's spool says)",
    )
    add_spool(p)
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args)
        max_age = parse_duration(args.max_age or DEFAULT_MAX_AGE, "--max-age")
        repo = open_repo_for(store_url(args, cfg), cfg, args)
        max_wal_age = (
            parse_duration(args.max_wal_age, "--max-wal-age")
            if args.max_wal_age
            else cfg.pitr.max_wal_age or DEFAULT_MAX_WAL_AGE
        )
        now = datetime.now(UTC)
        report = check(
            repo,
            max_age=max_age,
            drill_log_path=args.drill_log or drill_log_path(cfg),
            now=now,
            source=args.source,
            database=args.database,
            servers=pg_servers(cfg),
            pg_bin=cfg.pg_bin,
            pitr=_pitr_health(args, cfg, repo, now, max_wal_age) if not args.database else None,
            max_wal_age=max_wal_age,
            max_base_age=cfg.pitr.max_base_age or DEFAULT_MAX_BASE_AGE,
        )
    except DbkeeperError as exc:
        # A check that cannot look is UNKNOWN, whatever the error's own exit code would be elsewhere.
        if args.json:
            emit_json({"ok": False, "state": UNKNOWN, "error": exc.message, "hint": exc.hint})
        else:
            print(f"{UNKNOWN}: {exc.message}")
        print_error(exc)
        return NAGIOS[UNKNOWN]
    code = NAGIOS[report.state]
    if args.json:
        emit_json(report.to_json())
        return code
    if not report.databases and not report.pitr and not report.pitr_errors:
        which = " ".join(f"{k} {v}" for k, v in (("of source", args.source), ("of", args.database)) if v)
        print(f"CRITICAL: no backups in {repo.url}" + (f" {which}" if which else ""))
    for db in report.databases:
        print(db.line())
    for p in report.pitr:
        print(p.line())
    for line in report.pitr_error_lines():
        print(line)
    if report.leftovers:
        print(report.leftover_line())
    if report.refused_drills:
        print(report.refused_drills_line())
    for line in report.server_lines():
        print(line)
    return code


def _pitr_health(args: argparse.Namespace, cfg: Any, repo: Any, now: datetime, delay: Any) -> Survey:
    from pathlib import Path

    from dbkeeper.pitr.health import survey

    data_dir = args.data_dir or cfg.pitr.data_dir
    return survey(
        repo.store,
        now=now,
        source=args.source,
        verify_key=repo.verify_key,
        identities=identities(args, cfg),
        data_dir=Path(data_dir) if data_dir else None,
        spool_root=args.spool,
        delay=delay,
    )
