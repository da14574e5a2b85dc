"""dbkeeper restore BACKUP [TARGET]: verified, whole or not at all; ``--globals`` for a server's roles and
tablespaces. The target is named as psql names one: TARGET (a URL or a libpq connection string), or
``-h/-p/-U/-d``, or the PG* environment; ``-h`` is the host here (``--help`` is help)."""

from __future__ import annotations

import argparse
import os
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
from dbkeeper.engines import RestoreOptions, qualified_name, server_url
from dbkeeper.errors import UsageError
from dbkeeper.restore import default_jobs, restore_globals, run_restore
from dbkeeper.units import format_seconds


def register(sub: Any) -> None:
    p = sub.add_parser(
        "restore",
        add_help=False,
        help="restore a backup into a database",
        description="Restore BACKUP (a path, a name in the store as `dbkeeper list` shows it, s3://…/file, or latest"
        " with --source/--database) into TARGET"
        " (postgresql://user@host:port/newdb, a libpq connection string such as 'host=db2 dbname=newdb', or"
        " sqlite:///path.db); instead of TARGET, -d/--dbname with -h/-p/-U as in psql, else the PG* environment"
        " (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD). The backup is verified first, restored into a"
        " temporary, checked against the manifest's row counts, and only then put in place. An existing TARGET is"
        " replaced only with --drop-existing; any failure leaves it as it was. With --globals, BACKUP is a"
        " server's roles and tablespaces (backup --all keeps them) and TARGET a server: the missing ones are"
        " created, nothing is changed or dropped.",
    )
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("backup", metavar="BACKUP", nargs="?")
    p.add_argument("target", metavar="TARGET", nargs="?")
    p.add_argument("-d", "--dbname", metavar="DBNAME", help="the target database (a name, URL or connection string)")
    p.add_argument("-h", "--host", help="the target's host (as psql -h; default PGHOST)")
    p.add_argument("-p", "--port", help="the target's port (as psql -p; default PGPORT)")
    p.add_argument("-U", "--username", help="connect as this user (as psql -U; default PGUSER)")
    p.add_argument(
        "--globals",
        action="store_true",
        help="BACKUP holds a server's roles and tablespaces: create those the target server lacks (never drops or"
        " changes one that exists)",
    )
    p.add_argument(
        "--allow-no-password",
        action="store_true",
        help="with --globals: create LOGIN roles that have no password in the backup",
    )
    p.add_argument(
        "--allow-superuser",
        action="store_true",
        help="with --globals: create roles with SUPERUSER, REPLICATION or BYPASSRLS, or server-level role grants",
    )
    p.add_argument(
        "-t",
        "--table",
        action="append",
        default=[],
        metavar="TABLE",
        help="restore only this table (schema.table, or a name one schema holds; repeatable): its data, indexes,"
        " constraints, defaults and sequences; a foreign key only when the table it references comes too",
    )
    p.add_argument(
        "-n",
        "--schema",
        action="append",
        default=[],
        metavar="SCHEMA",
        help="restore only this schema, everything in it (repeatable)",
    )
    p.add_argument(
        "--into-existing",
        action="store_true",
        help="with --table/--schema: load them into TARGET, which exists, in one transaction that only creates"
        " (a table or schema that is already there is refused, or replaced with --drop-existing)",
    )
    p.add_argument(
        "--drop-existing",
        action="store_true",
        help="replace TARGET if it exists (its sessions are ended); with --into-existing: replace the tables or"
        " schemas restored",
    )
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


def target_of(args: argparse.Namespace, *, server: bool = False) -> str:
    """TARGET, else -h/-p/-U/-d and the PG* environment (a ``server`` needs no database)."""
    parts = (args.host, args.port, args.username, args.dbname)
    if args.target:
        if any(parts):
            raise UsageError(
                "the target is named twice: TARGET and -h/-p/-U/-d",
                "give a TARGET URL, or -d DBNAME with -h/-p/-U, not both",
            )
        return str(args.target)
    if not any(parts) and not os.environ.get("PGDATABASE") and not server:
        raise UsageError(
            "no target named",
            "name one: TARGET (postgresql://user@host:port/newdb or sqlite:///copy.db), -d DBNAME, or PGDATABASE",
        )
    return server_url(args.host, args.port, args.username, args.dbname, server=server)


def run(args: argparse.Namespace) -> int:
    if args.pitr:
        return _run_pitr(args)
    if not args.backup:
        args.parser.error("the following arguments are required: BACKUP (or --pitr DATADIR)")
    if args.globals:
        return _globals(args)
    if args.allow_no_password or args.allow_superuser:
        raise UsageError("--allow-no-password and --allow-superuser go with --globals")
    if args.jobs is None:
        args.jobs = default_jobs()
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {args.jobs}")
    cfg = load_config(args)
    target = target_of(args)
    if args.into_existing and not (args.table or args.schema):
        raise UsageError("--into-existing goes with --table or --schema", "a whole backup goes into a new database")
    repo, name = locate_backup(args, cfg)
    options = RestoreOptions(
        args.drop_existing,
        args.no_owner,
        args.disable_triggers,
        jobs=args.jobs,
        tables=tuple(_table(t) for t in args.table),
        schemas=tuple(args.schema),
        into_existing=args.into_existing,
    )
    bar = ProgressLine(f"restore {name}", enabled=not args.json)
    try:
        result = run_restore(
            repo,
            name,
            target,
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
        if options.into_existing:
            how = "into the existing database"
        print(
            f"restored {name} into {result.target} ({how}): {len(result.row_counts)} tables, {rows} rows"
            f" match the manifest, {format_seconds(result.seconds)}"
        )
    return 0


def _pitr_port(text: str | None) -> int:
    """With --pitr, -p/--port is the restored server's port (its socket's name), 5432 unless given."""
    if text is None:
        return 5432
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"--port {text!r} is not a port number", "give 1-65535")
    return int(text)


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
        port=_pitr_port(args.port),
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
    note = _before_primary(result, source_id) if args.action != "pause" else None
    if args.json:
        emit_json({"ok": True, **result.to_json(), "note": note})
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
    if note:
        print(f"note: {note}")
    return 0


def _before_primary(result: Any, source_id: str) -> str:
    """What a promoted restored cluster needs before it serves as the primary: it was started with
    archive_mode = off (a look at the past never writes into the archive), so nothing protects its new timeline
    yet, and the history file its promotion wrote was marked for no archiver."""
    from pathlib import Path

    try:
        history = sorted(p.name for p in (Path(result.datadir) / "pg_wal").glob("*.history"))
    except OSError:
        history = []
    push = f"dbkeeper wal-push pg_wal/{history[-1]} --source {source_id}" if history else None
    return (
        f"{result.datadir} does not archive its WAL (archive_mode = off). Before it serves as the primary, set"
        f" archive_mode = on and archive_command = 'dbkeeper wal-push %p --source {source_id}', restart it"
        + (f", and run `{push}` in its data directory" if push else "")
        + " (docs/PITR.md)"
    )


def _table(text: str) -> tuple[str, str]:
    """A --table argument: (schema, table) unquoted; the schema "" when not given (found in the backup)."""
    try:
        schema, table = qualified_name(text)
    except ValueError:
        raise UsageError(f"--table {text!r} is not a table name", "write schema.table, e.g. public.users") from None
    return schema or "", table


def _globals(args: argparse.Namespace) -> int:
    if args.drop_existing:
        raise UsageError("restore --globals never drops a role or tablespace", "leave out --drop-existing")
    cfg = load_config(args)
    target = target_of(args, server=True)
    repo, name = locate_backup(args, cfg)
    result = restore_globals(
        repo,
        name,
        target,
        allow_no_password=args.allow_no_password,
        allow_superuser=args.allow_superuser,
        pg_bin=args.pg_bin or cfg.pg_bin,
        identities=identities(args, cfg),
    )
    if args.json:
        emit_json({"ok": True, **result.to_json()})
        return 0
    created = ", ".join(result.created_roles) or "none"
    print(f"restored {name} onto {result.target}: created roles {created}")
    if result.existing_roles:
        print(f"  left as they were (already there): {', '.join(result.existing_roles)}")
    if result.created_tablespaces or result.existing_tablespaces:
        print(
            f"  tablespaces created: {', '.join(result.created_tablespaces) or 'none'};"
            f" already there: {', '.join(result.existing_tablespaces) or 'none'}"
        )
    return 0
