"""dbkeeper copy BACKUP --to STORE: copy a complete backup to other stores, checked against its manifest."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from dbkeeper.cli.common import (
    ProgressLine,
    add_json,
    add_selection,
    add_sse,
    add_store,
    add_verify_key,
    emit_json,
    load_config,
    locate_backup,
    open_repo_for,
    store_url,
)
from dbkeeper.cli.render import copy_failures, copy_lines
from dbkeeper.copy import copy_backup
from dbkeeper.errors import UsageError
from dbkeeper.notify import Notifier
from dbkeeper.repo import catalog


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
    add_verify_key(p)
    add_selection(p, "with latest: only")
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
    with Notifier.for_job(cfg, "copy").run() as report:
        targets = args.to or list(cfg.copy_to)
        if not targets:
            raise UsageError("no destination to copy to", "pass --to STORE, or set copy_to in dbkeeper.toml")
        destinations = [open_repo_for(url, cfg, args) for url in targets]
        if args.backup == "latest" and not args.database and not args.source:
            # The newest backup of every series in the store: what a scheduled off-host copy wants.
            source = open_repo_for(store_url(args, cfg), cfg, args)
            found = source.scan(datetime.now(UTC))
            names = [newest.name for entries in found.series().values() if (newest := catalog.newest_good(entries))]
            if not names:
                catalog.latest(found)  # raises: no complete backup
        else:
            source, name = locate_backup(args, cfg)
            names = [name]
        report.details["store"] = source.url
        results = []
        for name in names:
            bar = ProgressLine(f"copy {name}", enabled=not args.json)
            try:
                results.append(copy_backup(source, name, destinations, progress=bar))
            finally:
                bar.done()
        report.summary = f"copied {len(names)} backup(s) to {len(destinations)} store(s)"
        for r in results:
            for o in r.failures:
                assert o.error is not None
                report.fail(o.error.message, o.error.hint, source=f"{r.backup} to {o.destination}")
    if args.json:
        docs = [r.to_json() for r in results]
        emit_json(docs[0] if len(docs) == 1 else {"copies": docs})
    else:
        print("\n".join(line for r in results for line in copy_lines(r)))
    codes = [copy_failures(r) for r in results]
    return next((c for c in codes if c), 0)
