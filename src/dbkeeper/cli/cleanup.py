"""dbkeeper cleanup: remove what interrupted writes left in a store, and what interrupted restores left on servers."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dbkeeper import workfiles
from dbkeeper.cli.common import (
    add_json,
    add_store,
    emit_json,
    load_config,
    open_repo_for,
    pg_servers,
    print_error,
    store_url,
)
from dbkeeper.config import Config
from dbkeeper.engines import drop_server_leftover, is_sqlite, redact, server_leftovers, sqlite_path
from dbkeeper.errors import EXIT_FAILED, DbkeeperError
from dbkeeper.units import format_duration, human_size, parse_duration

SERVER_MIN_AGE = timedelta(hours=1)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "cleanup",
        help="remove leftovers of interrupted writes and restores",
        description="Remove what interrupted writes left in the store: temporary files of a killed backup or copy"
        " (never one a running write still holds) older than an hour, and unfinished S3 multipart uploads older"
        " than a day (a frozen endpoint or a killed upload leaves them invisible but billed). On this host: working"
        " directories of killed commands in the temporary directory (a SQLite copy being checked), and a killed"
        " SQLite restore's temporary file beside each of the config's SQLite sources. On the PostgreSQL"
        " servers of the config's sources and of each --server: temporary databases of interrupted restores that"
        " no session uses, older than an hour. A database a --drop-existing restore had renamed aside is reported"
        " with how to put it back, never dropped. Backups, complete or not, are never touched: `dbkeeper list`"
        " shows incomplete and broken ones for a person to judge.",
    )
    add_store(p)
    p.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="URL",
        help="also look on this PostgreSQL server (postgresql://user@host:port; repeatable)",
    )
    p.add_argument(
        "--older-than",
        metavar="AGE",
        help="remove leftovers older than this (e.g. 0s, 2h), instead of an hour (a day for uploads); what a"
        " running write or restore holds is never removed",
    )
    p.add_argument("--pg-bin", metavar="DIR", help="directory of psql (config pg_bin)")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    older_than = parse_duration(args.older_than, "--older-than", allow_zero=True) if args.older_than else None
    now = datetime.now(UTC)
    repo = open_repo_for(store_url(args, cfg), cfg, args)
    outcomes: list[dict[str, Any]] = []
    failed = 0

    def act(outcome: dict[str, Any], stale: bool, describe: str, remove: Any) -> None:
        nonlocal failed
        outcome["action"] = "keep" if not stale else "would remove" if args.dry_run else "removed"
        if stale and not args.dry_run:
            try:
                remove()
            except DbkeeperError as exc:
                print_error(exc)
                outcome.update(action="failed", error=exc.message)
                failed += 1
        outcomes.append(outcome)
        if not args.json:
            why = outcome.get("why", "")
            print(f"{outcome['action']:<12} {describe}{f' ({why})' if why and not stale else ''}")

    for state in repo.leftovers(now, older_than):
        outcome = {
            "kind": state.leftover.kind,
            "name": state.leftover.name,
            "where": repo.url,
            "size_bytes": state.leftover.size,
            "age_seconds": int(state.age.total_seconds()),
            "why": "in use or too recent",
        }
        act(outcome, state.stale, state.describe(), lambda state=state: repo.remove_leftover(state))

    beside = [Path(sqlite_path(s.url)) for s in cfg.sources if is_sqlite(s.url)]
    host_age = (SERVER_MIN_AGE if older_than is None else older_than).total_seconds()
    for host in workfiles.find(beside):
        stale = host.stale(host_age)
        outcome = {
            "kind": host.kind,
            "name": host.path.name,
            "where": str(host.path.parent),
            "size_bytes": host.size,
            "age_seconds": int(host.age),
            "why": "in use by a running command" if host.in_use else "too recent",
        }
        shown = f"{host.kind} {host.path} ({human_size(host.size)}, {format_duration(timedelta(seconds=host.age))} old)"
        act(outcome, stale, shown, lambda host=host: workfiles.remove(host))

    pg_bin = args.pg_bin or cfg.pg_bin
    for url in _servers(args, cfg):
        try:
            found = server_leftovers(url, pg_bin=pg_bin)
        except DbkeeperError as exc:
            print_error(exc, f"looking on {redact(url)}")
            failed += 1
            continue
        for lo in found:
            age = now - lo.created if lo.created else None
            if lo.kind != "temporary database":
                why = "holds a database's data: never dropped"
                stale = False
            elif lo.sessions:
                why, stale = f"{lo.sessions} session(s) connected: a restore is running", False
            else:
                minimum = SERVER_MIN_AGE if older_than is None else older_than
                stale = (age is not None and age >= minimum) or (age is None and older_than is not None)
                why = "too recent" if age is not None else "its age is unknown here: pass --older-than to remove it"
            outcome = {
                "kind": lo.kind,
                "name": lo.name,
                "where": lo.server,
                "size_bytes": lo.size,
                "age_seconds": int(age.total_seconds()) if age else None,
                "why": why,
            }
            shown = f"{lo.describe()} ({human_size(lo.size)}{f', {format_duration(age)} old' if age else ''})"
            act(outcome, stale, shown, lambda url=url, lo=lo: drop_server_leftover(url, lo, pg_bin=pg_bin))

    if args.json:
        emit_json({"ok": not failed, "store": repo.url, "dry_run": args.dry_run, "leftovers": outcomes})
    elif not outcomes:
        print(f"no leftovers in {repo.url}, on this host" + (" or on the servers" if _servers(args, cfg) else ""))
    return EXIT_FAILED if failed else 0


def _servers(args: argparse.Namespace, cfg: Config) -> list[str]:
    """--server URLs, then the PostgreSQL servers of the config's sources, each server once."""
    return pg_servers(cfg, args.server)
