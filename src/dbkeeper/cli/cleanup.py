"""dbkeeper cleanup: remove what interrupted writes left in a store (temporary files, unfinished uploads)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from dbkeeper.cli.common import add_json, add_store, emit_json, load_config, open_repo_for, print_error, store_url
from dbkeeper.errors import EXIT_FAILED, DbkeeperError
from dbkeeper.units import parse_duration


def register(sub: Any) -> None:
    p = sub.add_parser(
        "cleanup",
        help="remove leftovers of interrupted writes from a store",
        description="Remove what interrupted writes left in the store: temporary files of a killed backup or copy"
        " (never one a running write still holds) older than an hour, and unfinished S3 multipart uploads older"
        " than a day (a frozen endpoint or a killed upload leaves them invisible but billed). Backups, complete or"
        " not, are never touched: `dbkeeper list` shows incomplete and broken ones for a person to judge.",
    )
    add_store(p)
    p.add_argument(
        "--older-than",
        metavar="AGE",
        help="remove leftovers older than this (e.g. 0s, 2h), instead of an hour for files and a day for uploads;"
        " a temporary file that a running write holds is never removed",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    repo = open_repo_for(store_url(args, cfg), cfg, args)
    older_than = parse_duration(args.older_than, "--older-than", allow_zero=True) if args.older_than else None
    found = repo.leftovers(datetime.now(UTC), older_than)
    outcomes: list[dict[str, Any]] = []
    failed = 0
    for state in found:
        outcome: dict[str, Any] = {
            "kind": state.leftover.kind,
            "name": state.leftover.name,
            "size_bytes": state.leftover.size,
            "age_seconds": int(state.age.total_seconds()),
            "action": "keep" if not state.stale else "would remove" if args.dry_run else "removed",
        }
        if state.stale and not args.dry_run:
            try:
                repo.remove_leftover(state)
            except DbkeeperError as exc:
                print_error(exc)
                outcome.update(action="failed", error=exc.message)
                failed += 1
        outcomes.append(outcome)
        if not args.json:
            why = "" if state.stale else " (in use or too recent)"
            print(f"{outcome['action']:<12} {state.describe()}{why}")
    if args.json:
        emit_json({"ok": not failed, "store": repo.url, "dry_run": args.dry_run, "leftovers": outcomes})
    elif not found:
        print(f"no leftovers in {repo.url}")
    return EXIT_FAILED if failed else 0
