"""dbkeeper copy BACKUP --to STORE: copy a complete backup to other stores, checked against its manifest."""

from __future__ import annotations

import argparse
from typing import Any

from dbkeeper import catalog
from dbkeeper.cli.common import (
    add_json,
    add_sse,
    add_store,
    emit_json,
    load_config,
    open_store_for,
    print_error,
    store_url,
)
from dbkeeper.copy import CopyResult, copy_backup
from dbkeeper.errors import UsageError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "copy",
        help="copy a backup to other stores",
        description="Copy BACKUP (a path, a name in the store, s3://…/file, or latest) to each --to store: data,"
        " then .sha256, then the manifest. The bytes are checked against the manifest on the way; a mismatch leaves"
        " nothing at the destination. A backup already complete there is left alone; only complete backups are"
        " copied.",
    )
    p.add_argument("backup", metavar="BACKUP")
    add_store(p)
    p.add_argument("--database", metavar="NAME", help="with latest: only this database (default: every database)")
    p.add_argument(
        "--to",
        action="append",
        default=[],
        metavar="STORE",
        help="destination directory or s3://bucket/prefix (repeatable; default: copy_to in the config)",
    )
    add_sse(p)
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    targets = args.to or list(cfg.copy_to)
    if not targets:
        raise UsageError("no destination to copy to", "pass --to STORE, or set copy_to in dbkeeper.toml")
    destinations = [open_store_for(url, cfg, args) for url in targets]
    if args.backup == "latest" and not args.database:
        # The newest backup of every database in the store: what a scheduled off-host copy wants.
        source = open_store_for(store_url(args, cfg), cfg, args)
        entries = catalog.scan(source)
        names = [catalog.latest(entries, db).name for db in sorted({e.database for e in entries if e.good})]
        if not names:
            catalog.latest(entries)  # raises: no complete backup
    else:
        source, name = catalog.resolve(
            args.backup, store_url(args, cfg), args.database, lambda url: open_store_for(url, cfg, args)
        )
        names = [name]
    results = [copy_backup(source, name, destinations) for name in names]
    if args.json:
        docs = [r.to_json() for r in results]
        emit_json(docs[0] if len(docs) == 1 else {"copies": docs})
    else:
        print("\n".join(line for r in results for line in render(r)))
    codes = [report_failures(r) for r in results]
    return next((c for c in codes if c), 0)


def render(result: CopyResult) -> list[str]:
    lines = []
    for o in result.outcomes:
        if o.error is None:
            lines.append(f"{'copied to' if o.copied else 'already at'} {o.location}")
        else:
            lines.append(f"FAILED to copy to {o.destination}")
    return lines


def report_failures(result: CopyResult) -> int:
    """Each failed destination as an error on stderr; the exit code is the first failure's (0 when none)."""
    for o in result.failures:
        assert o.error is not None
        print_error(o.error, f"copy to {o.destination}")
    first = next((o.error for o in result.failures), None)
    return first.exit_code if first else 0
