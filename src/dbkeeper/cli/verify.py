"""dbkeeper verify BACKUP: every check short of a restore; exit 3 when one fails."""

from __future__ import annotations

import argparse
from typing import Any

from dbkeeper.cli.common import (
    ProgressLine,
    add_identity,
    add_json,
    add_selection,
    add_store,
    add_verify_key,
    emit_json,
    identities,
    load_config,
    locate_backup,
)
from dbkeeper.errors import EXIT_CHECK
from dbkeeper.notify import Notifier
from dbkeeper.verify import verify


def register(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="check a backup without restoring it",
        description="Check a backup: size, checksums, whole decompression, the dump's header and trailer, row counts."
        " BACKUP is a file path, a name in the store (source/file, as `dbkeeper list` shows it), s3://bucket/prefix/"
        "source/file, or latest (with --source or --database when the store holds several).",
    )
    p.add_argument("backup", metavar="BACKUP")
    add_store(p)
    add_verify_key(p)
    add_selection(p, "with latest:")
    add_identity(p)
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    with Notifier.for_job(cfg, "verify").run() as job:
        repo, name = locate_backup(args, cfg)
        job.details["store"] = repo.url
        bar = ProgressLine(f"verify {name}", enabled=not args.json)
        try:
            report = verify(repo, name, identities(args, cfg), progress=bar)
        finally:
            bar.done()
        if report.ok:
            job.summary = f"{name} verified"
        else:
            job.fail(f"{name} failed verification: {report.first_problem()}", "restore an older backup", source=name)
        doc = report.manifest
    if args.json:
        emit_json({**report.to_json(), "selection": doc.selection if doc and doc.partial else None})
    else:
        for c in report.checks:
            print(f"{'OK    ' if c.ok else 'FAILED'}  {c.name:<11} {c.detail}")
        if doc is not None and doc.partial:
            print(f"partial backup: {doc.describe_selection()} (only what this selected was checked)")
        print(f"{report.location}: {'verified' if report.ok else 'FAILED: ' + report.first_problem()}")
    return 0 if report.ok else EXIT_CHECK
