"""The scheduled jobs as a cron file, a block of a user's crontab, or systemd service and timer units.

Pure text, no I/O. Every job runs ``cd <the config's directory> && dbkeeper --config <config> schedule run --now
<job>``, so relative paths in the config (a ``backups`` store, ``sqlite:///app.db``) mean what they mean there,
and the job's steps (backup, then prune …) run as ``schedule run`` runs them in a container: one after the other,
each only after the one before succeeded, and the job's dead-man's switch pinged once, when the whole job has
ended (a ``backup && prune`` chain would ping when the backup ended, before the prune that may still fail). No
flock around the commands: ``dbkeeper backup`` holds a lock per source itself.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from dbkeeper.cron import to_oncalendar
from dbkeeper.schedule import Job, Step

CRON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BEGIN = "# BEGIN dbkeeper"
END = "# END dbkeeper"


@dataclass(frozen=True)
class Setup:
    """Where and how the jobs run."""

    dbkeeper: tuple[str, ...]  # the argv that starts dbkeeper, absolute: ("/usr/local/bin/dbkeeper",)
    config: Path  # absolute
    user: bool  # a user's crontab or systemd --user units, instead of the system's
    run_as: str  # the user column of /etc/cron.d
    log: str | None = None  # cron: append the output to this file instead of sending it to syslog

    def argv(self, step: Step) -> list[str]:
        return [*self.dbkeeper, "--config", str(self.config), *step]

    def job_argv(self, job: Job) -> list[str]:
        """What a cron line or a service runs for ``job``: its steps, through ``schedule run --now``."""
        return self.argv(("schedule", "run", "--now", job.name))

    def origin(self, kind: str) -> str:
        user = " --user" if self.user else ""
        return f"written by `dbkeeper schedule install --{kind}{user}` from {self.config}"


def title(job: Job) -> str:
    """``backup, then prune`` or ``copy to s3://b/p``."""
    return ", then ".join(f"copy to {step[-1]}" if step[0] == "copy" else step[0] for step in job.steps)


# -- cron ---------------------------------------------------------------------------------------------------


def cron_file(jobs: list[Job], setup: Setup) -> str:
    """/etc/cron.d/dbkeeper: environment lines, then one line per job with the user column."""
    head = [
        f"# /etc/cron.d/dbkeeper: {setup.origin('cron')}.",
        "# Change [schedule] in the config and install again rather than editing this file.",
        "# Times are UTC. cronie (RHEL, Fedora, Arch) honours CRON_TZ; Debian's and Ubuntu's cron ignore it and",
        "# use the host's time zone: keep such a host on UTC.",
        "CRON_TZ=UTC",
        "SHELL=/bin/sh",
        f"PATH={CRON_PATH}",
    ]
    body = [line for job in jobs for line in ("", _comment(job), _cron_line(job, setup, setup.run_as))]
    return "\n".join(head + body) + "\n"


def crontab_block(jobs: list[Job], setup: Setup) -> str:
    """The lines for a user's crontab between BEGIN and END markers. No CRON_TZ or PATH lines: in a crontab
    they would also change the user's own lines below them."""
    head = [f"{BEGIN}: {setup.origin('cron')}; times are UTC, so this cron must run in UTC"]
    body = [line for job in jobs for line in (_comment(job), _cron_line(job, setup, None))]
    return "\n".join([*head, *body, END]) + "\n"


def merge_crontab(existing: str, block: str) -> str:
    """``existing`` with its dbkeeper block replaced by ``block`` (or ``block`` appended)."""
    pattern = re.compile(rf"^{re.escape(BEGIN)}.*?^{re.escape(END)}[^\n]*\n?", re.S | re.M)
    if pattern.search(existing):
        return pattern.sub(lambda _m: block, existing, count=1)
    return existing + ("" if not existing or existing.endswith("\n") else "\n") + block


def _comment(job: Job) -> str:
    return f'# {title(job)} ({job.origin} "{job.cron.expr}")'


def _cron_line(job: Job, setup: Setup, user: str | None) -> str:
    command = f"(cd {shlex.quote(str(setup.config.parent))} && {shlex.join(setup.job_argv(job))})"
    command += f" >> {shlex.quote(setup.log)} 2>&1" if setup.log else " 2>&1 | logger -t dbkeeper"
    command = command.replace("%", "\\%")  # cron turns a bare % into a newline
    return " ".join([job.cron.fields(), *([user] if user else []), command])


# -- systemd ------------------------------------------------------------------------------------------------


def systemd_units(jobs: list[Job], setup: Setup) -> dict[str, str]:
    """File name -> text: ``dbkeeper-<job>.service`` and ``dbkeeper-<job>.timer`` for each job."""
    units: dict[str, str] = {}
    for job in jobs:
        name = f"dbkeeper-{job.name}"
        network = [] if setup.user else ["Wants=network-online.target", "After=network-online.target"]
        units[f"{name}.service"] = _unit(
            f"# {name}.service: {setup.origin('systemd')}",
            ("Unit", [f"Description=dbkeeper {title(job)}", *network]),
            (
                "Service",
                [
                    "Type=oneshot",
                    f"WorkingDirectory={str(setup.config.parent).replace('%', '%%')}",
                    f"ExecStart={' '.join(_systemd_word(a) for a in setup.job_argv(job))}",
                    "SyslogIdentifier=dbkeeper",
                ],
            ),
        )
        units[f"{name}.timer"] = _unit(
            f"# {name}.timer: {setup.origin('systemd')}",
            ("Unit", [f'Description=dbkeeper {job.name} at "{job.cron.expr}" UTC ({job.origin})']),
            (
                "Timer",
                [f"OnCalendar={to_oncalendar(job.cron)}", "Persistent=true", "RandomizedDelaySec=0"],
            ),
            ("Install", ["WantedBy=timers.target"]),
        )
    return units


WAL_DAEMON_UNIT = "dbkeeper-wal-daemon.service"
LEDGER_UNIT = "dbkeeper-ledger.service"


def wal_daemon_unit(setup: Setup, data_dir: str, run_as: str | None) -> str:
    """``dbkeeper-wal-daemon.service``: ``wal-daemon`` for the config's ``[pitr] data_dir``, restarted whenever it
    stops, as the data directory's owner (the user archive_command runs as, who reads its spool)."""
    return _daemon_unit(
        setup,
        WAL_DAEMON_UNIT,
        "dbkeeper wal-daemon (pushes WAL ahead of archive_command)",
        ("wal-daemon", "--data-dir", data_dir),
        data_dir,
        run_as,
        restart_s=2,
    )


def ledger_unit(setup: Setup) -> str:
    """``dbkeeper-ledger.service``: ``dbkeeper ledger`` into the ``[pitr] source``'s database, a row every 10 s,
    all the time: the scheduled PITR drill proves the point it reached against those rows. A ledger that stops
    shows there (the drill fails, saying the ledger was not being written), so it is restarted whenever it stops."""
    return _daemon_unit(
        setup,
        LEDGER_UNIT,
        "dbkeeper ledger (the rows PITR drills prove a restore against)",
        ("ledger",),
        str(setup.config.parent),
        None,
        restart_s=10,
    )


def _daemon_unit(
    setup: Setup, name: str, description: str, step: Step, workdir: str, run_as: str | None, *, restart_s: int
) -> str:
    """A service that runs all the time: restarted whenever it stops, however often (no start limit: a database
    down at boot must not leave it stopped for good)."""
    network = [] if setup.user else ["Wants=network-online.target", "After=network-online.target"]
    return _unit(
        f"# {name}: {setup.origin('systemd')}",
        ("Unit", [f"Description={description}", *network, "StartLimitIntervalSec=0"]),
        (
            "Service",
            [
                "Type=simple",
                *([f"User={run_as}"] if run_as and not setup.user else []),
                f"WorkingDirectory={workdir.replace('%', '%%')}",
                f"ExecStart={' '.join(_systemd_word(a) for a in setup.argv(step))}",
                "Restart=always",
                f"RestartSec={restart_s}",
                "KillSignal=SIGTERM",
                f"SyslogIdentifier={name.removesuffix('.service')}",
            ],
        ),
        ("Install", ["WantedBy=multi-user.target" if not setup.user else "WantedBy=default.target"]),
    )


def serve_unit(setup: Setup) -> dict[str, str]:
    """``dbkeeper-serve.service``: the dashboard (``dbkeeper serve``, read-only on 127.0.0.1:8090), a service that
    runs all the time rather than a timer. Its options go into a drop-in (``systemctl edit dbkeeper-serve``);
    credentials for another address come from a file or ``Environment=DBKEEPER_WEB_AUTH``, never ExecStart."""
    network = [] if setup.user else ["Wants=network-online.target", "After=network-online.target"]
    return {
        "dbkeeper-serve.service": _unit(
            f"# dbkeeper-serve.service: {setup.origin('systemd')} --serve",
            ("Unit", ["Description=dbkeeper dashboard (dbkeeper serve)", *network]),
            (
                "Service",
                [
                    "Type=simple",
                    f"WorkingDirectory={str(setup.config.parent).replace('%', '%%')}",
                    f"ExecStart={' '.join(_systemd_word(a) for a in setup.argv(('serve',)))}",
                    "Restart=on-failure",
                    "RestartSec=5",
                    "SyslogIdentifier=dbkeeper-serve",
                ],
            ),
            ("Install", ["WantedBy=default.target" if setup.user else "WantedBy=multi-user.target"]),
        )
    }


def systemctl_enable(jobs: list[Job], user: bool, services: list[str]) -> str:
    """The command that starts the timers and the services (``dbkeeper-serve.service``, the daemons)."""
    systemctl = "systemctl --user" if user else "systemctl"
    units = [f"dbkeeper-{job.name}.timer" for job in jobs] + services
    return f"{systemctl} daemon-reload && {systemctl} enable --now {' '.join(units)}"


def _unit(comment: str, *sections: tuple[str, list[str]]) -> str:
    parts = [comment]
    for name, lines in sections:
        parts.append(f"\n[{name}]\n" + "\n".join(lines))
    return "\n".join(parts) + "\n"


def _systemd_word(arg: str) -> str:
    """One argument as systemd reads it: % and $ doubled, quoted when it holds anything unusual."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
