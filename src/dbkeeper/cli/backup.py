"""dbkeeper backup [SOURCE ...]: dump each source into the store as a new backup set of its source.

Parses the command line into a plan, hands it to ``runs.backup``, and prints each source's result as it comes.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from dbkeeper import log
from dbkeeper.cli.common import (
    ProgressLine,
    add_json,
    add_metrics_file,
    add_sign_key,
    add_sse,
    add_store,
    emit_json,
    human_size,
    identities,
    load_config,
    open_repo_for,
    print_error,
    signer,
    store_url,
    update_metrics,
)
from dbkeeper.codec import COMPRESSIONS
from dbkeeper.engines import DumpSelection
from dbkeeper.engines.postgres.dumpopts import check_options
from dbkeeper.errors import EXIT_FAILED, DbkeeperError, UsageError
from dbkeeper.notify import Notifier
from dbkeeper.pipeline import BackupOptions
from dbkeeper.progress import Progress
from dbkeeper.runs.backup import BackupPlan, SourceResult, Whole, back_up, sources_from
from dbkeeper.units import format_seconds


def register(sub: Any) -> None:
    p = sub.add_parser(
        "backup",
        add_help=False,
        help="back up databases into the store",
        description="Back up each SOURCE (postgresql://user@host:port/db, a libpq connection string such as"
        " 'host=db1 dbname=casino', sqlite:///app.db, a path ending .db, or a source name from the config). With no"
        " SOURCE: -h/-p/-U/-d as in pg_dump, else the config's sources, else the PG* environment. With --all, each"
        " SOURCE is a server: every database that accepts connections and is not a template is backed up as a"
        " source of its own, with the server's roles and tablespaces. -h is the host here, as in pg_dump (--help"
        " is help). Each source is locked while it is backed up: a second run of the"
        " same source (cron and a manual run) fails at once and writes nothing. [notify] in the config (or"
        " DBKEEPER_WEBHOOK_URL, DBKEEPER_PING_URL) reports the run to a webhook and a dead-man's switch.",
    )
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("sources", nargs="*", metavar="SOURCE")
    p.add_argument("-h", "--host", help="PostgreSQL host (as pg_dump -h)")
    p.add_argument("-p", "--port", help="PostgreSQL port (as pg_dump -p)")
    p.add_argument("-U", "--username", help="PostgreSQL user (as pg_dump -U)")
    p.add_argument("-d", "--dbname", help="PostgreSQL database (as pg_dump -d)")
    p.add_argument(
        "--name",
        metavar="ID",
        help="the source's id in the store, as [[sources]] name (default: derived from host, port and database, or"
        " the file's path)",
    )
    add_store(p)
    add_sign_key(p)
    p.add_argument("--compress", choices=COMPRESSIONS, default="gzip", help="compression (default gzip)")
    p.add_argument(
        "--encrypt-to",
        action="append",
        default=[],
        metavar="AGE_RECIPIENT",
        help="encrypt for this age recipient (repeatable)",
    )
    p.add_argument(
        "--copy-to",
        action="append",
        default=[],
        metavar="STORE",
        help="then copy the backup to this store (repeatable; default: copy_to in the config)",
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="back up every database of each server named (connectable, not a template; pg_back's choice), each as"
        " a source of its own, and the server's roles and tablespaces (config: all = true)",
    )
    p.add_argument(
        "--exclude-db",
        action="append",
        default=[],
        metavar="PATTERN",
        help="with --all: leave out databases matching this shell pattern (repeatable: --exclude-db 'test_*')",
    )
    p.add_argument(
        "--no-globals",
        action="store_true",
        help="with --all: do not keep the server's roles and tablespaces this time",
    )
    _add_selection(p)
    p.add_argument(
        "--parallel-sources",
        type=int,
        default=None,
        metavar="N",
        help="back up N sources (databases) at once (default 1); each source is one pg_dump",
    )
    p.add_argument("--jobs", "-j", type=int, default=None, dest="jobs", help=argparse.SUPPRESS)
    p.add_argument(
        "--format",
        choices=["plain", "custom"],
        default="plain",
        help="PostgreSQL: plain SQL (default; zcat | psql restores it) or pg_dump's custom archive"
        " (.dump.gz; restores with pg_restore --jobs)",
    )
    p.add_argument(
        "--globals",
        action="store_true",
        help="also keep the server's roles and tablespaces (pg_dumpall --globals-only) as <db>.globals_<stamp>",
    )
    p.add_argument("--no-copy", action="store_true", help="do not copy to the config's copy_to stores this time")
    p.add_argument(
        "--prune",
        action="store_true",
        help="then verify the backup and prune its database in the store with the [retention] policy",
    )
    p.add_argument("--pg-bin", metavar="DIR", help="directory of pg_dump/psql (config pg_bin)")
    p.add_argument(
        "--stall-timeout",
        type=_seconds,
        default=900.0,
        metavar="SECONDS",
        help="stop a dump that produces nothing for this long (default 900; 0 turns the watchdog off)",
    )
    add_sse(p)
    add_metrics_file(p)
    add_json(p)
    p.set_defaults(run=run)


def _add_selection(p: argparse.ArgumentParser) -> None:
    """pg_dump's own selection flags, with pg_dump's spellings; recorded in the manifest (a partial backup)."""
    for short, long, what in (
        ("-t", "--table", "back up only tables matching PATTERN (pg_dump -t; repeatable)"),
        ("-T", "--exclude-table", "leave out tables matching PATTERN (pg_dump -T; repeatable)"),
        ("-n", "--schema", "back up only schemas matching PATTERN (pg_dump -n; repeatable)"),
        ("-N", "--exclude-schema", "leave out schemas matching PATTERN (pg_dump -N; repeatable)"),
    ):
        p.add_argument(short, long, action="append", default=[], metavar="PATTERN", help=what)
    p.add_argument(
        "--exclude-table-data",
        action="append",
        default=[],
        metavar="PATTERN",
        help="keep these tables' definitions but not their rows (pg_dump --exclude-table-data; repeatable)",
    )
    p.add_argument(
        "--pg-dump-option",
        action="append",
        default=[],
        metavar="OPT",
        help="pass one more option to pg_dump, in one word (--pg-dump-option=--lock-wait-timeout=30s); only options"
        " that keep what dbkeeper relies on are allowed (a refused one is named with what to use instead)",
    )


def _seconds(text: str) -> float:
    """A number of seconds, 0 or more and finite (argparse turns the ValueError into a usage error)."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(text)
    return value


def run(args: argparse.Namespace) -> int:
    if args.jobs is not None:
        sys.stderr.write(
            "dbkeeper: note: backup --jobs is now --parallel-sources (sources at once; restore --jobs is sessions"
            " per database); --jobs keeps working\n"
        )
    parallel = (
        args.parallel_sources if args.parallel_sources is not None else (args.jobs if args.jobs is not None else 1)
    )
    if (args.exclude_db or args.no_globals) and not args.all:
        raise UsageError("--exclude-db and --no-globals go with --all", "back up a whole server: backup --all URL")
    selection = DumpSelection(
        tuple(args.table),
        tuple(args.exclude_table),
        tuple(args.schema),
        tuple(args.exclude_schema),
        tuple(args.exclude_table_data),
        check_options(args.pg_dump_option),
    )
    whole = Whole(tuple(args.exclude_db), not args.no_globals) if args.all else None
    cfg = load_config(args)
    with Notifier.for_job(cfg, "backup").run() as report:
        sources = sources_from(
            args.sources,
            cfg,
            pg=(args.host, args.port, args.username, args.dbname),
            name=args.name,
            selection=selection,
            whole=whole,
        )
        repo = open_repo_for(store_url(args, cfg), cfg, args)
        report.details.update(databases=[s.label for s in sources], store=repo.url)
        policy = None
        if args.prune:
            from dbkeeper.prune import policy_from  # only runs that prune pay for importing it

            policy = policy_from({}, cfg.retention)
        copy_to = args.copy_to or ([] if args.no_copy else cfg.copy_to)
        plan = BackupPlan(
            sources=sources,
            options=BackupOptions(
                compression=args.compress,
                recipients=tuple(args.encrypt_to or cfg.encryption_recipients),
                stall_timeout=args.stall_timeout or None,
                signer=signer(args, cfg),
            ),
            dump_format=args.format,
            pg_bin=args.pg_bin or cfg.pg_bin,
            globals=args.globals,
            jobs=parallel,
            copy_to=tuple(open_repo_for(url, cfg, args) for url in copy_to),
            policy=policy,
            identities=identities(args, cfg) if policy is not None else None,
        )
        bars: dict[str, ProgressLine] = {}

        def progress_for(label: str) -> Progress | None:
            if args.json or parallel > 1:
                return None
            bars[label] = ProgressLine(f"backup {label}", enabled=True)
            return bars[label]

        def show(result: SourceResult) -> None:
            if result.label in bars:
                bars.pop(result.label).done()
            _show(result, args)

        try:
            results = back_up(plan, repo, report, progress_for=progress_for, on_result=show)
        except DbkeeperError:
            for bar in bars.values():
                bar.done()
            update_metrics(args, cfg, repo)  # after a failed run too: the last success stays visible
            raise
        metrics_ok = update_metrics(args, cfg, repo)
    if args.json:
        emit_json({"ok": report.ok, "backups": [r.to_json() for r in results]})
    return EXIT_FAILED if not (report.ok and metrics_ok) else 0


def _show(result: SourceResult, args: argparse.Namespace) -> None:
    """One source's outcome as it comes: the backup line, then its copies and prune; errors on stderr."""
    if result.manifest is None:
        if result.error is not None:
            print_error(result.error, result.label)
        return
    doc = result.manifest
    if not args.json:
        rows = sum(doc.row_counts.values())
        print(
            f"{result.location}  {human_size(doc.size_bytes)}"
            f" (from {human_size(doc.raw_size_bytes or 0)}, {len(doc.row_counts)} tables, {rows} rows)"
            f" in {format_seconds(doc.duration_s)}" + (f", partial: {doc.describe_selection()}" if doc.partial else ""),
            flush=True,
        )
    if result.copies is not None:
        from dbkeeper.cli.render import copy_failures, copy_lines

        if isinstance(result.copies, DbkeeperError):
            print_error(result.copies)
        else:
            if not args.json:
                print("\n".join(f"  {line}" for line in copy_lines(result.copies)))
            copy_failures(result.copies)
    if result.prune_skipped:
        log.warning(f"prune skipped: {result.prune_skipped}")
    elif isinstance(result.prune, DbkeeperError):
        print_error(result.prune)
    elif result.prune is not None:
        from dbkeeper.cli.render import prune_summary

        if not args.json:
            print(f"  {prune_summary(result.prune)}")
            for d in result.prune.removed:
                if d.deleted:
                    print(f"  removed {d.name}")
        for failed in result.prune.failures:
            assert failed.error is not None
            print_error(failed.error)
