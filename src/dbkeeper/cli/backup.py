"""dbkeeper backup [SOURCE ...]: dump each source into the store, with checksum sidecar and manifest.

After each backup is committed: ``--copy-to`` copies it to other stores, then ``--prune`` verifies it and prunes
its database in the store. A failed copy skips the prune: a run that already failed deletes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from dbkeeper.cli.common import (
    ProgressLine,
    add_json,
    add_metrics_file,
    add_sse,
    add_store,
    emit_json,
    human_size,
    load_config,
    open_store_for,
    print_error,
    store_url,
    update_metrics,
)
from dbkeeper.codec import COMPRESSIONS
from dbkeeper.config import Config
from dbkeeper.engines import engine_for, is_sqlite, redact
from dbkeeper.errors import EXIT_FAILED, DbkeeperError, UsageError
from dbkeeper.lock import SourceLock
from dbkeeper.notify import Notifier, Run
from dbkeeper.pipeline import BackupOptions, run_backup
from dbkeeper.storage import Store

if TYPE_CHECKING:
    from dbkeeper.manifest import Manifest
    from dbkeeper.retention import Policy


def register(sub: Any) -> None:
    p = sub.add_parser(
        "backup",
        add_help=False,
        help="back up databases into the store",
        description="Back up each SOURCE (postgresql://user@host:port/db, sqlite:///app.db, a path ending .db, or"
        " a source name from the config). With no SOURCE: -h/-p/-U/-d as in pg_dump, else the config's"
        " sources, else the PG* environment. Each source is locked while it is backed up: a second run of the"
        " same source (cron and a manual run) fails at once and writes nothing. [notify] in the config (or"
        " DBKEEPER_WEBHOOK_URL, DBKEEPER_PING_URL) reports the run to a webhook and a dead-man's switch.",
    )
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("sources", nargs="*", metavar="SOURCE")
    p.add_argument("-h", "--host", help="PostgreSQL host (as pg_dump -h)")
    p.add_argument("-p", "--port", help="PostgreSQL port (as pg_dump -p)")
    p.add_argument("-U", "--username", help="PostgreSQL user (as pg_dump -U)")
    p.add_argument("-d", "--dbname", help="PostgreSQL database (as pg_dump -d)")
    p.add_argument("--name", help="the name used in file names (default: the database name or the file's stem)")
    add_store(p)
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
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="back up N sources at once (default 1)")
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
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="stop a dump that produces nothing for this long (default 900)",
    )
    add_sse(p)
    add_metrics_file(p)
    add_json(p)
    p.set_defaults(run=run)


def resolve_sources(args: argparse.Namespace, cfg: Config) -> list[tuple[str, str]]:
    """(label, url) pairs to back up, in the order DESIGN.md gives."""
    if args.sources:
        out = []
        for spec in args.sources:
            named = cfg.source(spec)
            out.append((spec, named.url) if named else (redact(spec), spec))
        return out
    if args.dbname or args.host or args.username or args.port:
        return [(args.dbname or "", _pg_url(args.host, args.port, args.username, args.dbname))]
    if cfg.sources:
        return [(s.name, s.url) for s in cfg.sources]
    if os.environ.get("PGDATABASE"):
        return [(os.environ["PGDATABASE"], _pg_url(None, None, None, os.environ["PGDATABASE"]))]
    raise UsageError(
        "nothing to back up",
        "name a SOURCE (postgresql://user@host/db or sqlite:///app.db), use -d DB, or add [[sources]] to the config",
    )


def _pg_url(host: str | None, port: str | None, user: str | None, db: str | None) -> str:
    db = db or os.environ.get("PGDATABASE")
    if not db:
        raise UsageError("no database named", "pass -d DBNAME or set PGDATABASE")
    auth = f"{user}@" if user else ""
    return f"postgresql://{auth}{host or ''}{':' + str(port) if port else ''}/{db}"


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {args.jobs}")
    with Notifier.from_config(cfg).run("backup") as report:
        sources = resolve_sources(args, cfg)
        store = open_store_for(store_url(args, cfg), cfg, args)
        report.details.update(databases=[label for label, _ in sources], store=store.url)
        try:
            results = _back_up_each(args, cfg, sources, store, report)
        except DbkeeperError:
            update_metrics(args, cfg, store)  # after a failed run too: the last success stays visible
            raise
        metrics_ok = update_metrics(args, cfg, store)
    if args.json:
        emit_json({"ok": report.ok, "backups": results})
    return EXIT_FAILED if not (report.ok and metrics_ok) else 0


def _back_up_each(
    args: argparse.Namespace, cfg: Config, sources: list[tuple[str, str]], store: Store, report: Run
) -> list[dict[str, Any]]:
    """Back up each source under its lock, then copy and prune it; a failure is reported and the next source
    still runs."""
    options = BackupOptions(
        compression=args.compress,
        recipients=tuple(args.encrypt_to or cfg.encryption_recipients),
        stall_timeout=args.stall_timeout or None,
    )
    copy_to = args.copy_to or ([] if args.no_copy else cfg.copy_to)
    destinations = [open_store_for(url, cfg, args) for url in copy_to]
    policy = None
    if args.prune:
        from dbkeeper.prune import policy_from  # only runs that prune pay for importing it

        policy = policy_from({}, cfg.retention)
    if policy is not None:
        policy.check()  # a policy that cannot decide fails before any backup is made

    def one(label: str, url: str, globals_only: bool = False) -> dict[str, Any]:
        try:
            engine = engine_for(
                url,
                pg_bin=args.pg_bin or cfg.pg_bin,
                name=args.name,
                globals_only=globals_only,
                dump_format="plain" if globals_only else args.format,
            )
            with SourceLock(engine.key(), label):
                bar = ProgressLine(f"backup {label}", enabled=not args.json and args.jobs == 1)
                doc = run_backup(engine, store, options, progress=bar.update)
                bar.done()
        except DbkeeperError as exc:
            report.fail(exc.message, exc.hint, source=label)
            if len(sources) == 1 and not args.globals:
                raise
            print_error(exc, label)
            return {"source": label, "ok": False, "error": exc.message, "hint": exc.hint}
        result: dict[str, Any] = {"source": label, "ok": True, "location": store.describe(doc.file)}
        result["manifest"] = doc.__dict__
        report.details.setdefault("backups", []).append(
            {"source": label, "file": doc.file, "size_bytes": doc.size_bytes, "duration_s": doc.duration_s}
        )
        if not args.json:
            rows = sum(doc.row_counts.values())
            print(
                f"{store.describe(doc.file)}  {human_size(doc.size_bytes)}"
                f" (from {human_size(doc.raw_size_bytes or 0)}, {len(doc.row_counts)} tables, {rows} rows)"
                f" in {doc.duration_s:.1f}s",
                flush=True,
            )
        if not _after_backup(store, doc, destinations, policy, args, cfg, result):
            report.fail(f"the copy or prune after backing up {label} failed", source=label)
        return result

    jobs = [(label, url, False) for label, url in sources]
    if args.globals:
        jobs += [(f"{label} (roles and tablespaces)", url, True) for label, url in sources if not is_sqlite(url)]
    if args.jobs > 1 and len(jobs) > 1:
        # Many sources at once: each dump is one client process and one server backend, mostly waiting on
        # each other, so a few in flight keep both cores busy. Results stay in the sources' order.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=args.jobs, thread_name_prefix="dbkeeper-backup") as pool:
            results = list(pool.map(lambda job: one(*job), jobs))
    else:
        results = [one(*job) for job in jobs]
    done = [r["source"] for r in results if r["ok"]]
    report.summary = f"{len(done)} of {len(results)} backed up" + (f" ({', '.join(done)})" if done else "")
    return results


def _after_backup(
    store: Store,
    doc: Manifest,
    destinations: list[Store],
    policy: Policy | None,
    args: argparse.Namespace,
    cfg: Config,
    result: dict[str, Any],
) -> bool:
    """--copy-to, then --prune, for one committed backup; False when either failed (reported on stderr)."""
    if not destinations and policy is None:
        return True  # result["ok"] stays True; the plain backup does not pay for importing copy and prune
    from dbkeeper.cli import copy, prune
    from dbkeeper.cli.verify import identities
    from dbkeeper.copy import copy_backup
    from dbkeeper.prune import prune_after_backup

    ok = True
    if destinations:
        try:
            copies = copy_backup(store, doc.file, destinations)
        except DbkeeperError as exc:
            print_error(exc)
            result["copies"] = [{"ok": False, "error": exc.message, "hint": exc.hint}]
            ok = False
        else:
            result["copies"] = copies.to_json()["copies"]
            if not args.json:
                print("\n".join(f"  {line}" for line in copy.render(copies)))
            ok = copy.report_failures(copies) == 0
    if policy is not None:
        if not ok:
            result["prune"] = {"ok": False, "skipped": "the copy failed, so nothing was pruned"}
            sys.stderr.write("dbkeeper: prune skipped: the copy failed, so nothing was pruned\n")
        else:
            try:
                pruned = prune_after_backup(store, doc.file, policy, identities=identities(args, cfg))
            except DbkeeperError as exc:
                print_error(exc)
                result["prune"] = {"ok": False, "error": exc.message, "hint": exc.hint}
                ok = False
            else:
                result["prune"] = pruned.to_json()
                if not args.json:
                    print(f"  {prune.summary(pruned)}")
                    for d in pruned.removed:
                        if d.deleted:
                            print(f"  removed {d.name}")
                for failed in pruned.failures:
                    assert failed.error is not None
                    print_error(failed.error)
                ok = not pruned.failures
    result["ok"] = ok
    return ok
