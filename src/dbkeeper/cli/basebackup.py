"""dbkeeper basebackup [SOURCE]: a physical base backup of a PostgreSQL cluster into its WAL archive's store."""

from __future__ import annotations

import argparse
from typing import Any

from dbkeeper.cli.common import (
    add_identity,
    add_json,
    add_sign_key,
    add_store,
    emit_json,
    human_size,
    identities,
    load_config,
    pitr_archive,
    signer,
)
from dbkeeper.engines.postgres.conn import PgConn
from dbkeeper.errors import UsageError
from dbkeeper.notify import Notifier
from dbkeeper.pitr.backup import BaseBackupOptions, take


def register(sub: Any) -> None:
    p = sub.add_parser(
        "basebackup",
        help="take a physical base backup for point-in-time recovery",
        description="Back up a whole PostgreSQL cluster with pg_basebackup (tar, SHA-256 manifest, WAL from the"
        " archive) into pitr/<source>/<sysid>-<major>/base/ in the store, compressed with zstd (encrypted with"
        " --encrypt-to, signed with --sign-key). SOURCE is a postgresql:// URL or a config source name (default:"
        " the [pitr] source's entry, else the PG* environment); the role needs REPLICATION. The backup counts only"
        " once every WAL segment it needs is in the archive (archive_command = 'dbkeeper wal-push %%p'); then"
        " backup.json is written, last.",
    )
    p.add_argument("source_url", nargs="?", metavar="SOURCE")
    p.add_argument("--source", metavar="ID", help="the source id of the WAL archive (config [pitr] source)")
    add_store(p)
    p.add_argument(
        "--incremental",
        action="store_true",
        help="PostgreSQL 17: only the blocks changed since the newest full base backup (needs summarize_wal = on)",
    )
    p.add_argument("--encrypt-to", action="append", default=[], metavar="AGE_RECIPIENT", help="encrypt (repeatable)")
    add_sign_key(p)
    add_identity(p)
    p.add_argument("--pg-bin", metavar="DIR", help="directory of pg_basebackup (config pg_bin)")
    p.add_argument(
        "--wal-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long to wait for the backup's WAL to reach the archive (default 120)",
    )
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    source_id = args.source or cfg.pitr.source
    url = args.source_url
    named = cfg.source(url) if url else (cfg.source(source_id) if source_id else None)
    if named is not None:
        url = named.url
        source_id = source_id or named.name
    if not source_id:
        raise UsageError(
            "no source id names the WAL archive this base backup belongs with",
            "pass --source ID (the one archive_command's wal-push uses) or set [pitr] source in the config",
        )
    conn = PgConn.from_url(url) if url else PgConn.from_url("postgresql:///postgres")
    archive = pitr_archive(args, cfg, source_id, writing=True)
    options = BaseBackupOptions(
        incremental=args.incremental,
        recipients=tuple(args.encrypt_to or cfg.encryption_recipients),
        identities=identities(args, cfg),
        signer=signer(args, cfg),
        pg_bin=args.pg_bin or cfg.pg_bin,
        wal_timeout=args.wal_timeout,
    )
    with Notifier.for_job(cfg, "basebackup").run() as report:
        report.details["store"] = archive.store.url
        doc = take(conn, archive, options)
        report.summary = f"{doc.kind} base backup {doc.id} of {source_id}"
    if args.json:
        emit_json({"ok": True, "backup": doc.to_json(), "location": archive.store.describe(_prefix(doc))})
    else:
        base = doc.object("base.tar")
        print(
            f"{archive.store.describe(_prefix(doc))}  {doc.kind}"
            + (f" (parent {doc.parent})" if doc.parent else "")
            + f"  {human_size(base.size)} (from {human_size(base.raw_size)}) in {doc.duration_s:.1f}s;"
            f" WAL {doc.start_segment}..{doc.stop_segment} archived"
        )
    return 0


def _prefix(doc: Any) -> str:
    return f"pitr/{doc.source_id}/{doc.archive_id}/base/{doc.id}"
