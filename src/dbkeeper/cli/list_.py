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
from dbkeeper.pitr.basebackup import Listed, list_all
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
        " error (exit 2), an empty one is not. Then the base backups of the --source (or the config's [pitr] source)"
        " for point-in-time recovery.",
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
    # Base backups of the --source (or the config's [pitr] source): finding every source's would list every
    # archived WAL file's name.
    pitr_source = args.source or cfg.pitr.source
    bases = list_all(repo.store, repo.verify_key, pitr_source) if pitr_source and not args.database else []
    if args.json:
        emit_json(
            {
                "store": repo.url,
                "backups": [_entry_json(e, now) for e in entries],
                "base_backups": [_base_json(b) for b in bases],
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
    for b in bases:
        print(_base_line(b))
    for s in leftovers:
        print(f"LEFTOVER: {s.describe()}" + ("; `dbkeeper cleanup` removes it" if s.stale else ""))
    return 0


def _base_line(b: Listed) -> str:
    """A base backup: where, when, size, kind and WAL range, and its state (INCOMPLETE: no backup.json)."""
    size = human_size(sum(b.objects.values()))
    if b.backup is None:
        why = b.problem or "no backup.json: an interrupted base backup, never restored from"
        return f"{b.prefix.rstrip('/')}  {size:>9}  {b.status.upper()}: {why}"
    doc = b.backup.to_json()
    wal = f"WAL {doc['start_segment']}..{doc['stop_segment']}"
    return f"{b.prefix.rstrip('/')}  {doc['stop_time'][:19]}Z  {size:>9}  {b.backup.kind}, {wal}  ok"


def _base_json(b: Listed) -> dict[str, Any]:
    return {
        "location": b.prefix.rstrip("/"),
        "archive_id": b.archive_id,
        "id": b.id,
        "status": b.status,
        "problem": b.problem,
        "size_bytes": sum(b.objects.values()),
        "backup": b.backup.to_json() if b.backup else None,
    }


def _row(e: Entry, now: datetime) -> tuple[str, ...]:
    rows = str(sum(e.manifest.row_counts.values())) if e.manifest else "-"
    state = e.state_text
    if e.manifest is not None and e.manifest.partial:
        state += f" (partial: {e.manifest.describe_selection()})"
    return (e.name, e.source_id, iso(e.created), _age(e, now), human_size(e.size), rows, state)


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
