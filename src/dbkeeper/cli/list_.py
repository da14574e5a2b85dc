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
    table,
)
from dbkeeper.repo import Entry, LeftoverState
from dbkeeper.repo.manifest import iso
from dbkeeper.units import format_duration


def register(sub: Any) -> None:
    p = sub.add_parser(
        "list",
        help="list the backups in a store",
        description="List the backups in a store, oldest first, under a header: the backup, its source, when it"
        " was made and how long ago, its size, rows and state, then any leftovers of interrupted writes. The"
        " state is what listing can see without reading the data: 'size ok' (the manifest reads, the size and"
        " the sidecar match it; 'signed' with a verify key), or INCOMPLETE/BROKEN/FUTURE and why. A flipped byte"
        " is not visible here: `dbkeeper verify BACKUP` reads a backup whole. A store that does not exist is an"
        " error (exit 2), an empty one is not.",
    )
    add_store(p)
    add_verify_key(p)
    add_selection(p)
    add_json(p)
    p.set_defaults(run=run)


HEADER = ("BACKUP", "SOURCE", "CREATED", "AGE", "SIZE", "ROWS", "STATE")
UNREAD_NOTE = "size ok: the manifest, size and sidecar match; the data was not read (`dbkeeper verify BACKUP` reads it)"


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    repo = open_repo_for(store_url(args, cfg), cfg, args)
    repo.require_store()
    now = datetime.now(UTC)
    entries = repo.scan(now, source=args.source, database=args.database).entries
    leftovers = repo.leftovers(now)
    if args.json:
        emit_json(
            {
                "store": repo.url,
                "backups": [_entry_json(e, now) for e in entries],
                "leftovers": [_leftover_json(s) for s in leftovers],
            }
        )
        return 0
    if not entries:
        print(f"no backups in {repo.url}")
    else:
        print("\n".join(table([HEADER, *(_row(e, now) for e in entries)])))
        if any(e.good for e in entries):
            print(UNREAD_NOTE)
    for s in leftovers:
        print(f"LEFTOVER: {s.describe()}" + ("; `dbkeeper cleanup` removes it" if s.stale else ""))
    return 0


def _row(e: Entry, now: datetime) -> tuple[str, ...]:
    rows = str(sum(e.manifest.row_counts.values())) if e.manifest else "-"
    return (e.name, e.source_id, iso(e.created), _age(e, now), human_size(e.size), rows, e.state_text)


def _age(e: Entry, now: datetime) -> str:
    if e.created > now:
        return "future"
    return format_duration(now - e.created)


def _entry_json(e: Entry, now: datetime) -> dict[str, Any]:
    return {
        "name": e.name,
        "source": e.source_id,
        "database": e.database,
        "created_at": iso(e.created),
        "stored_at": iso(e.stored),
        "age_seconds": int((now - e.created).total_seconds()),
        "size_bytes": e.size,
        "status": e.status,
        "state": e.state,
        "checked": list(e.checked),
        "problem": e.problem,
        "row_counts": e.manifest.row_counts if e.manifest else None,
        "encrypted": bool(e.manifest and e.manifest.encryption),
        "signed": e.signed,
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
