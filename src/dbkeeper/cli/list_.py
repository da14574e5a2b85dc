"""dbkeeper list: the catalog of a store, derived from listing it; broken entries and leftovers shown as such."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from dbkeeper.cli.common import (
    add_json,
    add_selection,
    add_store,
    add_verify_key,
    emit_json,
    human_size,
    load_config,
    open_repo_for,
    store_url,
)
from dbkeeper.repo import Entry, LeftoverState
from dbkeeper.repo.manifest import iso


def register(sub: Any) -> None:
    p = sub.add_parser(
        "list",
        help="list the backups in a store",
        description="List the backups in a store, oldest first, each with its source, database, time, size, rows"
        " and state (ok, or INCOMPLETE/BROKEN/FUTURE and why), then any leftovers of interrupted writes.",
    )
    add_store(p)
    add_verify_key(p)
    add_selection(p)
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    repo = open_repo_for(store_url(args, cfg), cfg, args)
    now = datetime.now(UTC)
    entries = repo.scan(now, source=args.source, database=args.database).entries
    leftovers = repo.leftovers(now)
    if args.json:
        emit_json(
            {
                "store": repo.url,
                "backups": [_entry_json(e) for e in entries],
                "leftovers": [_leftover_json(s) for s in leftovers],
            }
        )
        return 0
    if not entries:
        print(f"no backups in {repo.url}")
    else:
        width = max(len(e.name) for e in entries)
        for e in entries:
            rows = f"{sum(e.manifest.row_counts.values())} rows" if e.manifest else ""
            status = e.status if e.good else f"{e.status.upper()}: {e.problem}"
            if e.manifest is not None and e.manifest.partial:
                status += f" (partial: {e.manifest.describe_selection()})"
            print(f"{e.name:<{width}}  {iso(e.created)}  {human_size(e.size):>9}  {rows:>12}  {status}")
    for s in leftovers:
        print(f"LEFTOVER: {s.describe()}" + ("; `dbkeeper cleanup` removes it" if s.stale else ""))
    return 0


def _entry_json(e: Entry) -> dict[str, Any]:
    return {
        "name": e.name,
        "source": e.source_id,
        "database": e.database,
        "created_at": iso(e.created),
        "stored_at": iso(e.stored),
        "size_bytes": e.size,
        "status": e.status,
        "problem": e.problem,
        "row_counts": e.manifest.row_counts if e.manifest else None,
        "encrypted": bool(e.manifest and e.manifest.encryption),
        "signed": e.signed,
        "partial": bool(e.manifest and e.manifest.partial),
        "selection": e.manifest.selection if e.manifest and e.manifest.partial else None,
    }


def _leftover_json(s: LeftoverState) -> dict[str, Any]:
    return {
        "kind": s.leftover.kind,
        "name": s.leftover.name,
        "size_bytes": s.leftover.size,
        "age_seconds": int(s.age.total_seconds()),
        "in_use": s.leftover.in_use,
        "stale": s.stale,
    }
