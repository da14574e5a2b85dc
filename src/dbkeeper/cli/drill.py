"""dbkeeper drill: restore a random recent backup of each database into a scratch database, check, log, drop."""

from __future__ import annotations

import argparse
from typing import Any

from dbkeeper import drill_log, log, smoke
from dbkeeper.cli.common import (
    ProgressLine,
    add_identity,
    add_json,
    add_metrics_file,
    add_selection,
    add_sign_key,
    add_store,
    add_verify_key,
    add_wal_fetch_command,
    drill_log_path,
    emit_json,
    identities,
    load_config,
    open_repo_for,
    pitr_archive,
    signer,
    store_url,
    update_metrics,
    wal_fetch_command,
)
from dbkeeper.drill import DrillOptions, DrillResult, DrillRun, run_drills
from dbkeeper.engines import check_place
from dbkeeper.errors import EXIT_CHECK, EXIT_FAILED, UsageError
from dbkeeper.notify import Notifier
from dbkeeper.units import compact_duration, format_seconds, parse_duration

DEFAULT_MAX_AGE = "7d"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "drill",
        help="prove the backups restore: a timed, checked, logged restore into a scratch database",
        description="For each database in the store (or --database): pick a random good backup younger than"
        " --max-age, restore it (verified, row counts checked) into a new database <db>_drill_<UTC stamp> on the"
        " server the backup came from (or --target), run the --smoke queries in it, drop it, and append a row to"
        " the drill log. The source database is never touched. Exit 3 when a drill fails.",
    )
    add_store(p)
    add_verify_key(p)
    add_sign_key(p, "the drill's record in the store (so hosts with the verify key believe it)")
    add_selection(p, "drill only")
    p.add_argument(
        "--max-age",
        metavar="AGE",
        help=f"pick among backups younger than this: 26h, 7d, 2w (config [drill] max_age; default {DEFAULT_MAX_AGE})",
    )
    p.add_argument(
        "--smoke",
        metavar="FILE",
        help="SQL to run in the restored database; '-- expect: rows >= 1000' above a statement checks its result"
        " (config [drill] smoke; docs/DRILLS.md)",
    )
    p.add_argument(
        "--log",
        metavar="FILE",
        help="the Markdown drill log to append to (config [drill] log; default DR_DRILL_LOG.md in the state"
        " directory: $DBKEEPER_STATE_DIR, /var/lib/dbkeeper as root, ~/.local/state/dbkeeper). Each drill is also"
        " kept in the store under drills/, so `status` on any host sees it",
    )
    p.add_argument(
        "--target",
        metavar="URL",
        help="where to restore: postgresql://user@host:port (its database part is replaced) or a directory for"
        " SQLite (config [drill] target; default: the backup's own server, a temporary directory for SQLite)",
    )
    p.add_argument("--keep", action="store_true", help="keep the scratch database afterwards (to look around)")
    p.add_argument(
        "--pitr",
        action="store_true",
        help="a point-in-time drill instead: restore the --source's cluster (config [pitr] source) to a random time"
        " inside its PITR window in a throwaway data directory, and prove it against the ledger (`dbkeeper ledger`)",
    )
    p.add_argument(
        "--margin",
        metavar="DURATION",
        default="60s",
        help="with --pitr: keep targets this far from the newest archived WAL, which may hold no later commit"
        " (default 60s; at least archive_timeout plus the ledger's interval)",
    )
    add_wal_fetch_command(p)
    p.add_argument("--seed", type=int, metavar="N", help="seed the random choice, to repeat a drill exactly")
    p.add_argument("--pg-bin", metavar="DIR", help="directory of psql (config pg_bin)")
    add_identity(p)
    add_metrics_file(p)
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.pitr:
        return _run_pitr(args)
    cfg = load_config(args)
    conf = cfg.drill
    if args.max_age or not conf.max_age:
        max_age = parse_duration(args.max_age or DEFAULT_MAX_AGE, "--max-age")
    else:
        max_age = conf.max_age
    target = args.target or conf.target
    if target:
        check_place(target)
    smoke_file = args.smoke or conf.smoke
    options = DrillOptions(
        max_age=max_age,
        smoke=tuple(smoke.load(smoke_file)) if smoke_file else (),
        target=target,
        keep=args.keep,
        pg_bin=args.pg_bin or cfg.pg_bin,
        identities=tuple(identities(args, cfg) or ()),
        signer=signer(args, cfg),
    )
    with Notifier.for_job(cfg, "drill").run() as report:
        repo = open_repo_for(store_url(args, cfg), cfg, args)
        report.details["store"] = repo.url
        log_path = args.log or conf.log or str(drill_log.default_path())
        bars: list[ProgressLine] = []

        def progress_for(database: str) -> ProgressLine:
            for bar in bars:
                bar.done()
            bars.append(ProgressLine(f"drill {database}", enabled=not args.json))
            return bars[-1]

        try:
            result = run_drills(
                repo,
                options,
                log=log_path,
                source=args.source,
                database=args.database,
                seed=args.seed,
                progress_for=progress_for,
            )
        finally:
            for bar in bars:
                bar.done()
        _report(report, result)
    for warning in result.warnings:
        log.warning(warning)
    metrics_ok = update_metrics(args, cfg, repo, log_path)
    if args.json:
        emit_json(result.to_json())
    else:
        _render(result)
    if not result.ok:
        return EXIT_CHECK
    return 0 if metrics_ok else EXIT_FAILED


def _run_pitr(args: argparse.Namespace) -> int:
    from dbkeeper.drill import PitrDrillOptions, run_pitr_drill

    if args.database or args.target or args.keep:
        raise UsageError("--pitr takes none of --database, --target, --keep", "drill --pitr [--source ID]")
    cfg = load_config(args)
    source_id = args.source or cfg.pitr.source
    if not source_id:
        raise UsageError("no source names the WAL archive", "pass --source ID or set [pitr] source in the config")
    smoke_file = args.smoke or cfg.drill.smoke
    fetch, fetch_args = wal_fetch_command(args, cfg, source_id)
    options = PitrDrillOptions(
        fetch_command=fetch,
        fetch_args=fetch_args,
        smoke=tuple(smoke.load(smoke_file)) if smoke_file else (),
        pg_bin=args.pg_bin or cfg.pg_bin,
        identities=tuple(identities(args, cfg) or ()),
        margin=parse_duration(args.margin, "--margin", allow_zero=True),
        signer=signer(args, cfg),
    )
    archive = pitr_archive(args, cfg, source_id, writing=False)
    log_file = args.log or drill_log_path(cfg)
    with Notifier.for_job(cfg, "pitr-drill").run() as report:
        report.details["store"] = archive.store.url
        result = run_pitr_drill(archive, options, log=log_file, seed=args.seed)
        _report(report, result)
    for warning in result.warnings:
        log.warning(warning)
    if args.json:
        emit_json(result.to_json())
    else:
        for drill in result.drills:
            _render_one(drill)
        print(f"seed {result.seed}; logged to {result.log}")
    return 0 if result.ok else EXIT_CHECK


def _report(report: Any, result: DrillRun) -> None:
    """What the drill job tells ([notify]): how many passed, and each failure where it failed."""
    passed = [d.database for d in result.drills if d.ok]
    report.summary = f"{len(passed)} of {len(result.drills)} drill(s) passed" + (
        f" ({', '.join(passed)})" if passed else ""
    )
    for d in result.drills:
        failed = next((c for c in d.checks if not c.ok), None)
        if failed is not None:
            report.fail(f"drill failed at {failed.name}: {failed.detail}", failed.hint, source=d.database)


def _render(run: DrillRun) -> None:
    for drill in run.drills:
        _render_one(drill)
    passed = sum(d.ok for d in run.drills)
    print(
        f"{passed} of {len(run.drills)} drill(s) passed (max-age {compact_duration(run.max_age)},"
        f" seed {run.seed}); logged to {run.log}"
    )


def _render_one(drill: DrillResult) -> None:
    restore = f", restore {format_seconds(drill.restore_seconds)}" if drill.restore_seconds is not None else ""
    print(f"{'PASS' if drill.ok else 'FAIL'} {drill.database} in {format_seconds(drill.total_seconds)}{restore}")
    width = max(len(c.name) for c in drill.checks)
    for c in drill.checks:
        print(f"  {'OK    ' if c.ok else 'FAILED'}  {c.name:<{width}}  {c.detail}")
        if c.hint and not c.ok:
            print(f"  {'':6}  {'':<{width}}  Try: {c.hint}")
    for warning in drill.warnings:
        print(f"  anomaly: {warning}")
