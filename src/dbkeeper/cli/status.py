"""dbkeeper status: one line per series (a database of a source), OK, WARNING or CRITICAL; exit 3 when any is not OK."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from dbkeeper.cli.common import (
    add_json,
    add_selection,
    add_store,
    add_verify_key,
    drill_log_path,
    emit_json,
    load_config,
    open_repo_for,
    store_url,
)
from dbkeeper.errors import EXIT_CHECK
from dbkeeper.status import check
from dbkeeper.units import parse_duration

DEFAULT_MAX_AGE = "26h"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="is every database backed up recently and drilled? (for cron and monitoring)",
        description="For each database of each source in the store: its newest good backup, that backup's age and"
        " size, and the last drill from the drill log, as one line 'OK|WARNING|CRITICAL source: …'."
        " CRITICAL when the newest good backup is older than --max-age, when broken backups are newer than it (a"
        " failing nightly), or when the last drill failed; WARNING for backups dated in the future and for"
        " leftovers of interrupted writes (`dbkeeper cleanup`). Exit 3 unless everything is OK.",
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
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    max_age = parse_duration(args.max_age or DEFAULT_MAX_AGE, "--max-age")
    repo = open_repo_for(store_url(args, cfg), cfg, args)
    report = check(
        repo,
        max_age=max_age,
        drill_log_path=args.drill_log or drill_log_path(cfg),
        now=datetime.now(UTC),
        source=args.source,
        database=args.database,
    )
    if args.json:
        emit_json(report.to_json())
        return 0 if report.ok else EXIT_CHECK
    if not report.databases:
        which = " ".join(f"{k} {v}" for k, v in (("of source", args.source), ("of", args.database)) if v)
        print(f"CRITICAL: no backups in {repo.url}" + (f" {which}" if which else ""))
    for db in report.databases:
        print(db.line())
    if report.leftovers:
        print(report.leftover_line())
    return 0 if report.ok else EXIT_CHECK
