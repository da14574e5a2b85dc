"""dbkeeper list: the catalog of a store, derived from listing it; broken entries shown as such."""

from __future__ import annotations

import argparse
from typing import Any

from dbkeeper import catalog
from dbkeeper.cli.common import add_json, add_store, emit_json, human_size, load_config, open_store_for, store_url
from dbkeeper.manifest import iso


def register(sub: Any) -> None:
    p = sub.add_parser("list", help="list the backups in a store", description="List the backups in a store.")
    add_store(p)
    p.add_argument("--database", metavar="NAME", help="only this database's backups")
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    store = open_store_for(store_url(args, cfg), cfg)
    entries = catalog.scan(store, args.database)
    if args.json:
        emit_json({"store": store.url, "backups": [_entry_json(e) for e in entries]})
        return 0
    if not entries:
        print(f"no backups in {store.url}")
        return 0
    width = max(len(e.name) for e in entries)
    for e in entries:
        rows = f"{sum(e.manifest.row_counts.values())} rows" if e.manifest else ""
        status = e.status if e.good else f"{e.status.upper()}: {e.problem}"
        print(f"{e.name:<{width}}  {iso(e.created)}  {human_size(e.size):>9}  {rows:>12}  {status}")
    return 0


def _entry_json(e: catalog.Entry) -> dict[str, Any]:
    return {
        "name": e.name,
        "database": e.database,
        "created_at": iso(e.created),
        "size_bytes": e.size,
        "status": e.status,
        "problem": e.problem,
        "row_counts": e.manifest.row_counts if e.manifest else None,
        "encrypted": bool(e.manifest and e.manifest.encryption),
    }
