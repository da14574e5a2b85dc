"""dbkeeper verify BACKUP: every check short of a restore; exit 3 when one fails."""

from __future__ import annotations

import argparse
import os
from typing import Any

from dbkeeper import catalog, crypto
from dbkeeper.cli.common import add_json, add_store, emit_json, load_config, open_store_for, store_url
from dbkeeper.config import Config
from dbkeeper.errors import EXIT_CHECK
from dbkeeper.verify import verify


def register(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="check a backup without restoring it",
        description="Check a backup: size, checksums, whole decompression, the dump's header and trailer, row counts."
        " BACKUP is a file path, a name in the store, s3://bucket/prefix/file, or latest.",
    )
    p.add_argument("backup", metavar="BACKUP")
    add_store(p)
    p.add_argument("--database", metavar="NAME", help="with latest: the database")
    add_identity(p)
    add_json(p)
    p.set_defaults(run=run)


def add_identity(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--identity",
        metavar="FILE",
        help="age identity file for encrypted backups (env DBKEEPER_AGE_IDENTITY)",
    )


def identities(args: argparse.Namespace, cfg: Config) -> list[Any] | None:
    path = getattr(args, "identity", None) or os.environ.get("DBKEEPER_AGE_IDENTITY") or cfg.identity
    return crypto.load_identities(path) if path else None


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    store, name = catalog.resolve(
        args.backup, store_url(args, cfg), args.database, lambda url: open_store_for(url, cfg, args)
    )
    report = verify(store, name, identities(args, cfg))
    if args.json:
        emit_json(report.to_json())
    else:
        for c in report.checks:
            print(f"{'OK    ' if c.ok else 'FAILED'}  {c.name:<11} {c.detail}")
        print(f"{report.location}: {'verified' if report.ok else 'FAILED: ' + report.first_problem()}")
    return 0 if report.ok else EXIT_CHECK
