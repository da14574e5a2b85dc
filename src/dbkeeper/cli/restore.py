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
    add_wal_fetch_command,
    emit_json,
    human_size,
    identities,
    load_config,
    locate_backup,
    pitr_archive,
    wal_fetch_command,
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
    p.add_argument("backup", metavar="BACKUP", nargs="?")
    p.add_argument("target", metavar="TARGET", nargs="?")
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
    _add_pitr(p)
    add_json(p)
    p.set_defaults(run=run, parser=p)


def _add_pitr(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "point-in-time recovery",
        "restore --pitr DATADIR (--to-time T | --to-lsn L | --to-name N | --to-latest) [--source ID]: a new data"
        " directory from the newest good base backup before the target and the WAL archive, paused at the target,"
        " checked, then promoted. No BACKUP or TARGET then.",
    )
    g.add_argument("--pitr", metavar="DATADIR", help="the new data directory (empty or absent)")
    to = g.add_mutually_exclusive_group()
    to.add_argument("--to-time", metavar="T", help="replay up to this time (ISO 8601; UTC when no zone is given)")
    to.add_argument("--to-lsn", metavar="LSN", help="replay up to this WAL location (like 0/3000028)")
    to.add_argument("--to-name", metavar="NAME", help="replay up to this restore point (pg_create_restore_point)")
    to.add_argument("--to-latest", action="store_true", help="replay everything archived")
    g.add_argument(
        "--timeline",
        default="current",
        metavar="current|latest|N",
        help="the timeline to follow (default current: the base backup's own)",
    )
    g.add_argument(
        "--action",
        choices=["promote", "pause"],
        default="promote",
        help="at the target: promote (default) or leave the server paused there (with --keep-running)",
    )
    g.add_argument("--base-backup", metavar="ID", help="use this base backup (default: the newest before the target)")
    g.add_argument("--port", type=int, default=5432, help="the restored server's port (its socket's name)")
    g.add_argument(
        "--socket-dir", metavar="DIR", help="the restored server's socket directory (default: a private one)"
    )
    g.add_argument(
        "--smoke", metavar="FILE", help="SQL run at the target before promotion; any error fails the restore"
    )
    g.add_argument(
        "--smoke-db", default="postgres", metavar="DB", help="the database --smoke runs in (default postgres)"
    )
    g.add_argument("--keep-running", action="store_true", help="leave the restored server running on its socket")
    add_wal_fetch_command(g)  # type: ignore[arg-type]
    g.add_argument(
        "--timeout", type=float, default=3600.0, metavar="SECONDS", help="give up replay after this long (default 3600)"
    )


def run(args: argparse.Namespace) -> int:
    if args.pitr:
        return _run_pitr(args)
    if not (args.backup and args.target):
        args.parser.error("the following arguments are required: BACKUP, TARGET (or --pitr DATADIR)")
    if args.jobs is None:
        args.jobs = default_jobs()
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {args.jobs}")
    cfg = load_config(args)
    repo, name = locate_backup(args, cfg)
    options = RestoreOptions(args.drop_existing, args.no_owner, args.disable_triggers, jobs=args.jobs)
    bar = ProgressLine(f"restore {name}", enabled=not args.json)
    result = run_restore(
        repo,
        name,
        args.target,
        options,
        pg_bin=args.pg_bin or cfg.pg_bin,
        identities=identities(args, cfg),
        progress=bar.update,
    )
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


def _run_pitr(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dbkeeper.pitr import walfile
    from dbkeeper.pitr.recover import PitrRequest, Target, parse_time, restore_to_point

    if args.backup or args.target:
        raise UsageError("--pitr takes no BACKUP or TARGET", "restore --pitr DATADIR --to-time T")
    if args.to_time:
        target = Target("time", time=parse_time(args.to_time))
    elif args.to_lsn:
        try:
            target = Target("lsn", lsn=walfile.parse_lsn(args.to_lsn))
        except ValueError as exc:
            raise UsageError(str(exc), "write an LSN as pg_current_wal_lsn() shows it: 0/3000028") from None
    elif args.to_name:
        target = Target("name", name=args.to_name)
    elif args.to_latest:
        target = Target("latest")
    else:
        raise UsageError("--pitr needs a target", "give --to-time T, --to-lsn L, --to-name N or --to-latest")
    cfg = load_config(args)
    source_id = args.source or cfg.pitr.source
    if not source_id:
        raise UsageError("no source names the WAL archive", "pass --source ID or set [pitr] source in the config")
    archive = pitr_archive(args, cfg, source_id, writing=False)
    fetch, fetch_args = wal_fetch_command(args, cfg, source_id)
    request = PitrRequest(
        datadir=Path(args.pitr),
        target=target,
        timeline=args.timeline,
        action=args.action,
        backup=args.base_backup,
        port=args.port,
        socket_dir=Path(args.socket_dir).absolute() if args.socket_dir else None,
        smoke=Path(args.smoke) if args.smoke else None,
        smoke_db=args.smoke_db,
        keep_running=args.keep_running,
        fetch_command=fetch,
        fetch_args=fetch_args,
        pg_bin=args.pg_bin or cfg.pg_bin,
        identities=identities(args, cfg),
        timeout=args.timeout,
    )
    say = (lambda line: None) if args.json else (lambda line: print(line, flush=True))
    result = restore_to_point(archive, request, say=say)
    if args.json:
        emit_json({"ok": True, **result.to_json()})
        return 0
    where = f"LSN {result.reached_lsn}" + (f", last commit {result.reached_time}" if result.reached_time else "")
    state = "paused at the target" if args.action == "pause" else "promoted"
    print(
        f"restored {result.datadir} from base backup {result.backup} to {result.target}: reached {where};"
        f" {state}; RTO {result.rto_s:.1f}s (unpack {result.unpack_s:.1f}s, replay {result.replay_s:.1f}s,"
        f" {human_size(result.replay_rate)}/s)"
    )
    if result.running:
        print(
            f"the server is running on socket {result.socket_dir} port {result.port};"
            f" stop it with pg_ctl -D {result.datadir} stop"
        )
    return 0
