"""dbkeeper status: one line per database, OK or CRITICAL; exit 3 when any is critical (a cron or Nagios check)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from dbkeeper.cli.common import add_json, add_store, drill_log_path, emit_json, load_config, open_store_for, store_url
from dbkeeper.errors import EXIT_CHECK
from dbkeeper.status import check
from dbkeeper.units import parse_duration

DEFAULT_MAX_AGE = "26h"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="is every database backed up recently and drilled? (for cron and monitoring)",
        description="For each database in the store: its newest good backup, that backup's age and size, and the"
        " last drill from the drill log, as one line 'OK|CRITICAL name: …'. CRITICAL, and exit 3, when the newest"
        " good backup is older than --max-age, when broken backups are newer than it (a failing nightly), or when"
        " the last drill failed.",
    )
    add_store(p)
    p.add_argument("--database", metavar="NAME", help="only this database")
    p.add_argument(
        "--max-age", metavar="AGE", help=f"the newest backup must be younger than this (default {DEFAULT_MAX_AGE})"
    )
    p.add_argument(
        "--drill-log",
        metavar="FILE",
        help="the drill log to read (default: config [drill] log, else docs/DR_DRILL_LOG.md)",
    )
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    max_age = parse_duration(args.max_age or DEFAULT_MAX_AGE, "--max-age")
    store = open_store_for(store_url(args, cfg), cfg)
    report = check(
        store,
        max_age=max_age,
        drill_log_path=args.drill_log or drill_log_path(cfg),
        now=datetime.now(UTC),
        database=args.database,
    )
    if args.json:
        emit_json(report.to_json())
    elif not report.databases:
        print(f"CRITICAL: no backups in {store.url}" + (f" of {args.database}" if args.database else ""))
    else:
        for db in report.databases:
            print(db.line())
    return 0 if report.ok else EXIT_CHECK
