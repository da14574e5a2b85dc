"""``schedule install``: render the jobs for cron or systemd and write them, atomically, where they belong.

System: ``/etc/cron.d/dbkeeper``, or ``/etc/systemd/system/dbkeeper-<job>.{service,timer}``. With ``user``:
the dbkeeper block of the user's crontab (through ``crontab -l`` / ``crontab -``, other lines kept), or
``~/.config/systemd/user``. ``dest`` writes the files into another directory (packaging, tests). Nothing is
enabled: the plan says which command does that.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from dbkeeper import proc
from dbkeeper.config import Config
from dbkeeper.errors import DbkeeperError, ToolError, UsageError
from dbkeeper.fsutil import write_atomic
from dbkeeper.schedule import jobs, pitr_drill_on
from dbkeeper.schedule.render import (
    LEDGER_UNIT,
    WAL_DAEMON_UNIT,
    Setup,
    cron_file,
    crontab_block,
    ledger_unit,
    merge_crontab,
    serve_unit,
    systemctl_enable,
    systemd_units,
    wal_daemon_unit,
)

SYSTEM_CRON_DIR = Path("/etc/cron.d")
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")


@dataclass(frozen=True)
class Request:
    kind: str  # "cron" | "systemd"
    user: bool = False
    dbkeeper: str | None = None  # the dbkeeper to run (default: the one running now)
    dest: Path | None = None  # write here instead of the system's place
    log: str | None = None  # cron: append output to this file instead of syslog
    dry_run: bool = False
    serve: bool = False  # systemd: also the dashboard's service (dbkeeper-serve.service)


@dataclass
class Plan:
    files: dict[Path, str] = field(default_factory=dict)  # what was (or, dry run, would be) written
    crontab: str | None = None  # the block for the user's crontab
    enable: str | None = None  # the command that turns the schedule on
    notes: list[str] = field(default_factory=list)


def install(cfg: Config, req: Request) -> Plan:
    """Render the schedule and, unless it is a dry run, write it. Returns what it wrote (or would write)."""
    if not cfg.path:
        raise UsageError(
            "schedule install needs a config file: the jobs read their sources and store from it",
            "pass --config FILE or create dbkeeper.toml with [[sources]]",
        )
    if not cfg.sources:
        raise UsageError(f"{cfg.path} has no [[sources]]: a scheduled backup would have nothing to back up")
    if req.kind == "cron" and req.user and req.dest:
        raise UsageError("--dest does not apply to a user's crontab", "use --dry-run to see the lines")
    if req.serve and req.kind != "systemd":
        raise UsageError(
            "--serve needs --systemd: cron starts jobs, not a server that keeps running",
            "use --systemd --serve, or run `dbkeeper serve` under your own supervisor",
        )
    if req.log and req.kind != "cron":
        raise UsageError("--log applies to --cron only", "systemd keeps the output in the journal")
    found = jobs(cfg)
    if not found:
        raise UsageError("every job in [schedule] is off: nothing to install")
    setup = Setup(dbkeeper_argv(req.dbkeeper), Path(cfg.path).resolve(), req.user, _login(), req.log)
    plan = Plan()
    if req.kind == "cron" and req.user:
        plan.crontab = crontab_block(found, setup)
    elif req.kind == "cron":
        plan.files[(req.dest or SYSTEM_CRON_DIR) / "dbkeeper"] = cron_file(found, setup)
    else:
        directory = req.dest or (_user_unit_dir() if req.user else SYSTEM_UNIT_DIR)
        units = systemd_units(found, setup) | (serve_unit(setup) if req.serve else {})
        plan.files = {directory / name: text for name, text in units.items()}
        services = ["dbkeeper-serve.service"] if req.serve else []
        daemon = cfg.pitr.data_dir
        if daemon:
            plan.files[directory / WAL_DAEMON_UNIT] = wal_daemon_unit(setup, daemon, _owner(daemon))
            services.append(WAL_DAEMON_UNIT)
        if pitr_drill_on(found):
            plan.files[directory / LEDGER_UNIT] = ledger_unit(setup)
            services.append(LEDGER_UNIT)
        plan.enable = systemctl_enable(found, req.user, services)
        plan.notes += _stale_units(directory, set(plan.files), req.user)
        if req.user:
            plan.notes.append(f"user timers run only while {_login()} is logged in, unless: loginctl enable-linger")
    if req.kind == "cron":
        plan.notes += _timezone_note()
        if cfg.pitr.data_dir:
            plan.notes.append(
                "[pitr] data_dir is set, but cron cannot keep `dbkeeper wal-daemon` running: use --systemd, or"
                " run it under your own supervisor (wal-push works without it, only slower)"
            )
        if pitr_drill_on(found):
            plan.notes.append(
                "the PITR drill is judged by the ledger, which cron cannot keep writing: use --systemd, or keep"
                f" `{shlex.join(setup.argv(('ledger',)))}` running under your own supervisor"
            )
    pitr_jobs = [job.name for job in found if job.name in ("basebackup", "pitr-drill")]
    if pitr_jobs and cfg.pitr.source and cfg.source(cfg.pitr.source) is None:
        plan.notes.append(
            f"[pitr] source {cfg.pitr.source!r} has no [[sources]] entry of that name: {' and '.join(pitr_jobs)}"
            " need its postgresql:// URL (basebackup would use the PG* environment, the ledger nothing); add"
            f' [[sources]] name = "{cfg.pitr.source}"'
        )
    if not req.dry_run:
        for path, text in plan.files.items():
            _write(path, text)
        if plan.crontab:
            _update_crontab(plan.crontab)
    return plan


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text.encode(), 0o644)
    except OSError as exc:
        raise DbkeeperError(
            f"cannot write {path}: {exc.strerror}", "run as root to install into /etc, or pass --user"
        ) from exc


def _update_crontab(block: str) -> None:
    try:
        current = proc.run(["crontab", "-l"], timeout=30)
    except ToolError as exc:
        if "no crontab" not in exc.stderr:
            raise ToolError(
                f"cannot read your crontab: {exc.message}", "install cron, or use --systemd --user"
            ) from exc
        current = ""
    proc.run(["crontab", "-"], input=merge_crontab(current, block).encode(), timeout=30)


def dbkeeper_argv(explicit: str | None) -> tuple[str, ...]:
    """The dbkeeper a job runs: ``--dbkeeper``, else the script beside this interpreter, else ``python -m``."""
    if explicit:
        return (str(Path(explicit).expanduser().absolute()),)
    beside = Path(sys.executable).parent / "dbkeeper"
    if beside.is_file():
        return (str(beside),)
    found = shutil.which("dbkeeper")
    return (str(Path(found).absolute()),) if found else (sys.executable, "-m", "dbkeeper")


def _owner(path: str) -> str | None:
    """The OS user owning ``path`` (a data directory's owner is the server's user); None when unknown."""
    import pwd

    try:
        return pwd.getpwuid(os.stat(path).st_uid).pw_name
    except (OSError, KeyError):
        return None


def _login() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "root"


def _user_unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def _stale_units(directory: Path, keep: set[Path], user: bool) -> list[str]:
    if not directory.is_dir():
        return []
    systemctl = "systemctl --user" if user else "systemctl"
    timers = sorted(p for p in directory.glob("dbkeeper-*.timer") if p not in keep)
    notes = [
        f"{p} is from an earlier install and no longer scheduled; left alone."
        f" Remove it with: {systemctl} disable --now {p.name} && rm {p} {p.with_suffix('.service')}"
        for p in timers
    ]
    # The services that run all the time (the ledger, the WAL daemon) keep running until turned off.
    services = sorted(p for p in (directory / LEDGER_UNIT, directory / WAL_DAEMON_UNIT) if p.exists() and p not in keep)
    notes += [
        f"{p} is from an earlier install and no longer wanted, but keeps running until turned off; left alone."
        f" Stop it with: {systemctl} disable --now {p.name} && rm {p}"
        for p in services
    ]
    return notes


def _timezone_note() -> list[str]:
    offset = time.localtime().tm_gmtoff
    if not offset:
        return []
    return [
        f"this host's time zone is {time.strftime('%Z')} (UTC{offset / 3600:+g}), not UTC: a cron that ignores"
        " CRON_TZ (Debian's, Ubuntu's) will run these at local time; set the host to UTC or use --systemd"
    ]
