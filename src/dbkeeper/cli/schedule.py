"""dbkeeper schedule install | run | show: the config's [schedule] for cron or systemd, or in the foreground."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import Any

from dbkeeper import schedule
from dbkeeper.cli.common import add_json, emit_json, load_config
from dbkeeper.errors import UsageError
from dbkeeper.notify import Notifier
from dbkeeper.schedule import install as installer
from dbkeeper.schedule.runner import Runner, iso, utcnow

_ABOUT = (
    "Jobs come from the config's [schedule] (cron expressions in UTC): backup (default 0 2 * * *, followed by"
    " prune; backup itself copies to the copy_to stores), drill (default 0 4 * * 0); prune or copy with an"
    ' expression of their own run as jobs of their own; "off" leaves a job out.'
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "schedule",
        help="run the scheduled jobs from cron, systemd timers or in the foreground",
        description="Install the scheduled jobs for cron or systemd, run them in the foreground (containers), or"
        " show when they run next. " + _ABOUT,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    i = actions.add_parser(
        "install",
        help="write a cron file or systemd units for the jobs",
        description="Write /etc/cron.d/dbkeeper, or a service and a timer per job into /etc/systemd/system (with"
        " --user: your crontab, or ~/.config/systemd/user). Jobs cd into the config's directory and run"
        " dbkeeper --config FILE. " + _ABOUT,
    )
    kind = i.add_mutually_exclusive_group(required=True)
    kind.add_argument("--cron", dest="kind", action="store_const", const="cron", help="cron (/etc/cron.d/dbkeeper)")
    kind.add_argument("--systemd", dest="kind", action="store_const", const="systemd", help="systemd timers")
    i.add_argument("--user", action="store_true", help="your crontab or systemd --user units instead of /etc")
    i.add_argument("--dry-run", action="store_true", help="print what would be written; write nothing")
    i.add_argument("--dbkeeper", metavar="PATH", help="the dbkeeper the jobs run (default: this one)")
    i.add_argument("--dest", metavar="DIR", type=Path, help="write the files into DIR instead of /etc/…")
    i.add_argument("--log", metavar="FILE", help="cron: append the output to FILE instead of syslog (logger)")
    i.add_argument(
        "--serve",
        action="store_true",
        help="systemd: also dbkeeper-serve.service, the dashboard (dbkeeper serve), running all the time",
    )
    _add_config(i)
    add_json(i)
    i.set_defaults(run=_install)

    r = actions.add_parser(
        "run",
        help="run the jobs in the foreground as they fall due (containers)",
        description="Sleep until a job falls due, run it (one job at a time), log its start and finish; exit 0 on"
        " SIGTERM or SIGINT after interrupting a running job. With --json each log line is a JSON document on"
        " a line of its own (JSON Lines: time, event, job, exit_code, seconds, message). " + _ABOUT,
    )
    once = r.add_mutually_exclusive_group()
    once.add_argument("--once", action="store_true", help="run the jobs due this minute, then exit")
    once.add_argument("--now", metavar="JOB", choices=schedule.JOB_NAMES, help="run JOB now, then exit")
    r.add_argument(
        "--grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on stop, how long a running job may take to stop before it is killed (default 30)",
    )
    _add_config(r)
    add_json(r)
    r.set_defaults(run=_run)

    s = actions.add_parser(
        "show",
        help="list the jobs and their next runs",
        description="List the jobs and when each runs next (UTC). " + _ABOUT,
    )
    _add_config(s)
    add_json(s)
    s.set_defaults(run=_show)


def _add_config(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: absent here, the global ``dbkeeper --config FILE schedule …`` stays in force.
    p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="config file (as dbkeeper --config)")


def _install(args: argparse.Namespace) -> int:
    request = installer.Request(args.kind, args.user, args.dbkeeper, args.dest, args.log, args.dry_run, args.serve)
    plan = installer.install(load_config(args), request)
    if args.json:
        files = [{"path": str(path), "text": text} for path, text in plan.files.items()]
        emit_json(
            {
                "dry_run": args.dry_run,
                "files": files,
                "crontab": plan.crontab,
                "enable": plan.enable,
                "notes": plan.notes,
            }
        )
        return 0
    for path, text in plan.files.items():
        print(f"# --- {path} (dry run: not written) ---\n{text}" if args.dry_run else f"wrote {path}")
    if plan.crontab:
        print(
            f"# --- your crontab (dry run: not changed) ---\n{plan.crontab}"
            if args.dry_run
            else "updated your crontab: the lines between # BEGIN dbkeeper and # END dbkeeper"
        )
    if plan.enable:
        what = "the timers" + (" and the dashboard" if args.serve else "")
        print(f"# then turn {what} on: {plan.enable}" if args.dry_run else f"turn {what} on: {plan.enable}")
    elif not plan.crontab:
        print("# cron reads /etc/cron.d/dbkeeper by itself: nothing to enable")
    if args.dest:
        print(f"# written into {args.dest}, not the system's directory: copy the files there to use them")
    for note in plan.notes:
        print(f"# note: {note}")
    return 0


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    jobs = schedule.jobs(cfg)
    if not jobs:
        raise UsageError("every job in [schedule] is off: nothing to run")
    config = str(Path(cfg.path).resolve()) if cfg.path else None
    runner = Runner(
        jobs,
        config=config,
        cwd=str(Path(config).parent) if config else None,
        log=lambda line: print(line, flush=True),
        grace=args.grace,
        events=(lambda event: emit_json(event, lines=True)) if args.json else None,
        notifier_for=lambda job: Notifier.for_job(cfg, job),
        services=[("ledger",)] if schedule.pitr_drill_on(jobs) and not (args.now or args.once) else [],
    )
    previous = {sig: signal.signal(sig, lambda *_: runner.stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if args.now:
            code = runner.run(schedule.find(jobs, args.now))
        elif args.once:
            code = runner.run_due()
        else:
            runner.serve()
            code = 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if runner.stopping else code


def _show(args: argparse.Namespace) -> int:
    runs = schedule.next_runs(schedule.jobs(load_config(args)), utcnow())
    if args.json:
        emit_json(
            {
                "jobs": [
                    {"job": j.name, "cron": j.cron.expr, "origin": j.origin, "next": iso(w), "steps": j.steps}
                    for w, j in runs
                ]
            }
        )
        return 0
    if not runs:
        print("nothing scheduled: every job in [schedule] is off")
    width = max(len(name) for name in schedule.JOB_NAMES)  # the same columns whichever jobs are on
    for when, job in runs:
        print(f"{job.name:<{width}} {job.cron.expr:<16} {job.origin:<16} next {iso(when)}  {job.describe()}")
    return 0
