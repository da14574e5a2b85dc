"""Scheduled jobs: what runs when, from the config's ``[schedule]`` (cron expressions in UTC).

Jobs and their defaults:
- ``backup`` at ``0 2 * * *`` (02:00 UTC daily), chained with what should follow it. ``backup`` itself copies
  each new backup to the ``copy_to`` stores as soon as it is committed (no window in which the newest backup
  exists only on this host, and no guess at how long a backup takes); then ``prune``, only if everything before
  succeeded (``&&``): prune is the one step that deletes, and a run in which anything failed should delete
  nothing. ``[schedule] copy`` or ``prune`` with a different expression makes that step a job of its own (say,
  copies at night for bandwidth: ``copy latest --to S``, the newest backup of every database); ``"off"``
  leaves it out (for copy: ``backup --no-copy``).
- ``drill`` at ``0 4 * * 0`` (Sundays 04:00 UTC).
- With ``[pitr] source`` (point-in-time recovery): ``basebackup`` at ``0 1 * * *`` (01:00 UTC daily, before the
  nightly dumps), and ``pitr-drill`` (``drill --pitr``) at ``30 4 * * 0`` (Sundays 04:30 UTC, after the drill).
  The PITR drill proves the point it reached against the ledger, which ``dbkeeper ledger`` keeps writing: a
  service beside the jobs (install.py writes its unit with the timers), not a job of its own.

The same jobs are rendered for cron or systemd (render.py, install.py) or run in the foreground (runner.py).
The commands run by name, so a job may name a command this build lacks; it then fails like any failing job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dbkeeper import cron
from dbkeeper.config import Config
from dbkeeper.errors import ConfigError, UsageError

JOB_NAMES = ("backup", "prune", "copy", "drill", "basebackup", "pitr-drill")
DEFAULTS = {"backup": "0 2 * * *", "drill": "0 4 * * 0", "basebackup": "0 1 * * *", "pitr-drill": "30 4 * * 0"}
OFF = "off"

Step = tuple[str, ...]  # a dbkeeper command line after the global options: ("copy", "latest", "--to", S)


@dataclass(frozen=True)
class Job:
    name: str
    cron: cron.Cron
    steps: tuple[Step, ...]  # run in order, each only after the one before succeeded
    origin: str  # where the expression came from: 'schedule.backup' or 'default'

    def describe(self) -> str:
        return " && ".join("dbkeeper " + " ".join(step) for step in self.steps)


def jobs(cfg: Config) -> list[Job]:
    """The scheduled jobs, in JOB_NAMES order."""
    conf = cfg.schedule
    exprs: dict[str, str | None] = {name: getattr(conf, name.replace("-", "_")) for name in JOB_NAMES}
    backup = exprs["backup"] or DEFAULTS["backup"]
    chain: list[Step] = [("backup",)]
    found: list[Job] = []
    followers: dict[str, list[Step]] = {
        "copy": [("copy", "latest", "--to", store) for store in cfg.copy_to],
        "prune": [("prune",)],
    }
    for name in ("copy", "prune"):
        expr, steps = exprs[name], followers[name]
        if not steps:
            continue
        if expr == OFF:
            if name == "copy":
                chain[0] = ("backup", "--no-copy")
            continue
        if expr is None or (backup != OFF and cron.parse(expr).times == cron.parse(backup).times):
            if name == "prune":
                chain += steps  # copies happen inside backup (config copy_to)
        else:
            found.append(_job(name, expr, steps, f"schedule.{name}"))
            if name == "copy":
                chain[0] = ("backup", "--no-copy")
    if backup != OFF:
        found.append(_job("backup", backup, chain, "schedule.backup" if exprs["backup"] else "default"))
    alone: dict[str, list[Step]] = {"drill": [("drill",)]}
    if cfg.pitr.source:
        alone |= {"basebackup": [("basebackup",)], "pitr-drill": [("drill", "--pitr")]}
    for name, steps in alone.items():
        expr = exprs[name] or DEFAULTS[name]
        if expr != OFF:
            found.append(_job(name, expr, steps, f"schedule.{name}" if exprs[name] else "default"))
    return sorted(found, key=lambda job: JOB_NAMES.index(job.name))


def pitr_drill_on(found: list[Job]) -> bool:
    """Whether the PITR drill is scheduled: then the ledger it is judged by must be written all the time."""
    return any(job.name == "pitr-drill" for job in found)


def _job(name: str, expr: str, steps: list[Step], origin: str) -> Job:
    try:
        parsed = cron.parse(expr)
    except cron.CronError as exc:  # config.load checked it already; a Config built in code may not be
        raise ConfigError(f"{origin}: {exc}") from None
    return Job(name, parsed, tuple(steps), origin)


def next_runs(jobs: list[Job], now: datetime) -> list[tuple[datetime, Job]]:
    """Each job's next run at or after ``now`` (UTC), soonest first; ties in JOB_NAMES order."""
    runs = [(job.cron.next_after(now - timedelta(seconds=1)), job) for job in jobs]
    return sorted(runs, key=lambda run: (run[0], JOB_NAMES.index(run[1].name)))


def due(jobs: list[Job], now: datetime) -> list[Job]:
    """The jobs whose schedule holds the minute of ``now``."""
    return [job for job in jobs if job.cron.matches(now)]


def find(jobs: list[Job], name: str) -> Job:
    for job in jobs:
        if job.name == name:
            return job
    have = ", ".join(job.name for job in jobs) or "none"
    raise UsageError(
        f"no scheduled job named {name}",
        f"scheduled jobs: {have} (a step chained after backup runs with it: use backup)",
    )
