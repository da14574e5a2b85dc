"""dbkeeper restore BACKUP TARGET: verified, whole or not at all."""

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
from dbkeeper.engines import RestoreOptions
from dbkeeper.errors import UsageError
from dbkeeper.restore import default_jobs, run_restore


def register(sub: Any) -> None:
    p = sub.add_parser(
        "restore",
        help="restore a backup into a database",
        description="Restore BACKUP (a path, a name in the store as `dbkeeper list` shows it, s3://…/file, or latest"
        " with --source/--database) into TARGET"
        " (postgresql://user@host:port/newdb or sqlite:///path.db). The backup is verified first, restored into a"
        " temporary, checked against the manifest's row counts, and only then put in place. An existing TARGET is"
        " replaced only with --drop-existing; any failure leaves it as it was.",
    )
    p.add_argument("backup", metavar="BACKUP")
    p.add_argument("target", metavar="TARGET")
    p.add_argument("--drop-existing", action="store_true", help="replace TARGET if it exists (its sessions are ended)")
    p.add_argument("--no-owner", action="store_true", help="skip ALTER … OWNER TO (restore as the connecting user)")
    p.add_argument(
        "--disable-triggers",
        action="store_true",
        help="load with triggers and FK checks off (session_replication_role=replica; superuser)",
    )
    add_store(p)
    add_verify_key(p)
    add_selection(p, "with latest:")
    p.add_argument("--pg-bin", metavar="DIR", help="directory of psql (config pg_bin)")
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=None,
        metavar="N",
        help="load over N sessions: a plain dump over at most 2 (tables, then indexes, in parallel), a custom"
        " archive with pg_restore --jobs N (default 2, or 1 on a single core: while one session's server process"
        " waits on its client, the other's works)",
    )
    add_identity(p)
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.jobs is None:
        args.jobs = default_jobs()
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {args.jobs}")
    cfg = load_config(args)
    repo, name = locate_backup(args, cfg)
    options = RestoreOptions(args.drop_existing, args.no_owner, args.disable_triggers, jobs=args.jobs)
    bar = ProgressLine(f"restore {name}", enabled=not args.json)
    try:
        result = run_restore(
            repo,
            name,
            args.target,
            options,
            pg_bin=args.pg_bin or cfg.pg_bin,
            identities=identities(args, cfg),
            progress=bar,
        )
    finally:
        bar.done()
    if args.json:
        emit_json({"ok": True, **result.to_json()})
    else:
        rows = sum(result.row_counts.values())
        how = "replaced" if result.replaced else "created"
        print(
            f"restored {name} into {result.target} ({how}): {len(result.row_counts)} tables, {rows} rows"
            f" match the manifest, {result.seconds:.1f}s"
        )
    return 0
