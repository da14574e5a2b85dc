"""``schedule run``: a foreground scheduler, for a container where there is no cron or systemd.

It sleeps until the next job falls due (croniter, UTC), runs the job's steps one after another as
``python -m dbkeeper [--config FILE] <step>`` (a failing step ends the job, like ``&&``) and logs one line
when a job starts and one when it finishes, with its exit code and duration. Jobs run one at a time, so a job
never overlaps itself (nor another: a drill does not compete with a backup); a job that falls due meanwhile
starts once the running one is done, once, however many of its runs were missed. A failing job is logged and
the loop goes on.

``stop()`` (the CLI calls it on SIGTERM and SIGINT) ends the loop. A running step is sent SIGINT, which makes
dbkeeper stop cleanly and keep nothing partial, and is killed if it is still running after ``grace`` seconds.
Steps run in their own session, so a Ctrl-C on the terminal reaches them only through us, once.

With ``events`` (``schedule run --json``) each of those lines is handed over as a record instead: the time, the
event (``planned``, ``start``, ``finish``, ``next``, ``nothing-due``, ``stopping``, ``stopped``, ``service``),
the job, and for a finish its exit code and seconds, beside the same message.

``services`` are kept running beside the jobs while ``serve()`` runs: the ledger, when the PITR drill is
scheduled (a drill proves the point it reached against rows the ledger wrote all week). One that ends is started
again after ``restart_s``, twice as long after each quick failure (up to 5 minutes); at stop each gets SIGTERM.

The children get our whole environment (proc.child_env would strip the AWS_, age and notification variables
that dbkeeper itself needs), plus ``DBKEEPER_SCHEDULED_JOB``: a job's dead-man's switch is pinged here, ``/start``
before its first step and success or ``/fail`` after its last, so that the backup job's ping says the prune after
it ran too; the steps themselves do not ping (each still sends its own notifications). The clock and the sleep
are injectable, for tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from dbkeeper import proc
from dbkeeper.notify import SCHEDULED_JOB_ENV, Notifier
from dbkeeper.schedule import JOB_NAMES, Job, Step, due, next_runs
from dbkeeper.units import format_seconds

Clock = Callable[[], datetime]
Event = dict[str, Any]
MAX_SLEEP_S = 60.0  # wake at least this often, so a wall clock that jumps (suspend, NTP) is noticed
MAX_RESTART_S = 300.0  # a service that keeps failing at once is started again at most this far apart


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Runner:
    def __init__(
        self,
        jobs: list[Job],
        *,
        config: str | None,
        cwd: str | None,
        log: Callable[[str], None],
        clock: Clock = utcnow,
        sleep: Callable[[float], object] | None = None,
        grace: float = 30.0,
        dbkeeper: Sequence[str] = (sys.executable, "-m", "dbkeeper"),
        events: Callable[[Event], None] | None = None,
        notifier_for: Callable[[str], Notifier] | None = None,
        services: Sequence[Step] = (),
        restart_s: float = 10.0,
    ) -> None:
        self.jobs = jobs
        self.services = tuple(services)  # kept running beside the jobs while serve() runs (the ledger)
        self.restart_s = restart_s
        self.config = config
        self.cwd = cwd
        self.clock = clock
        self.grace = grace
        self.dbkeeper = tuple(dbkeeper)
        self._log = log
        self._events = events
        self.notifier_for = notifier_for
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._said = threading.Lock()  # the services' threads log too: one line (one JSON document) at a time

    def log(self, message: str, event: str, job: str | None = None, **fields: Any) -> None:
        with self._said:
            now = iso(self.clock())
            if self._events is not None:
                self._events({"time": now, "event": event, "job": job, **fields, "message": message})
            else:
                self._log(f"{now} dbkeeper schedule: {message}")

    def stop(self) -> None:
        """Ask the loop to end; safe to call from a signal handler."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def serve(self) -> None:
        """Run the jobs as they fall due until ``stop()``."""
        planned: dict[str, datetime] = {}
        for when, job in next_runs(self.jobs, self.clock()):
            planned[job.name] = when
            self.log(
                f'{job.name} ({job.origin} "{job.cron.expr}") next at {iso(when)}: {job.describe()}',
                "planned",
                job.name,
                next=iso(when),
            )
        by_name = {job.name: job for job in self.jobs}
        keepers = [threading.Thread(target=self._keep, args=(step,), daemon=True) for step in self.services]
        for keeper in keepers:
            keeper.start()
        try:
            while planned and not self.stopping:
                name, when = min(planned.items(), key=lambda item: (item[1], JOB_NAMES.index(item[0])))
                delay = (when - self.clock()).total_seconds()
                if delay > 0:
                    self._sleep(min(delay, MAX_SLEEP_S))
                    continue
                self.run(by_name[name])
                planned[name] = by_name[name].cron.next_after(self.clock())
                if not self.stopping:
                    self.log(f"{name} next at {iso(planned[name])}", "next", name, next=iso(planned[name]))
        finally:  # whatever ends the loop (a reader of --json gone: BrokenPipeError) ends the services too
            self.stop()
            for keeper in keepers:
                keeper.join()
        self.log("stopped", "stopped")

    def _keep(self, step: Step) -> None:
        """Keep one service running until stop(): started now, started again ``restart_s`` after it ends, sent
        SIGTERM at stop (and killed after ``grace``). Its output goes to stderr; the events keep stdout."""
        name = step[0]
        argv = self._argv(step)
        delay = self.restart_s
        while not self.stopping:
            started = time.monotonic()
            with proc.Process(
                argv,
                env=dict(os.environ),
                stdout=sys.stderr.fileno(),
                cwd=self.cwd,
                new_session=True,
                stderr_echo=getattr(sys.stderr, "buffer", None),
            ) as child:
                self.log(f"{name} started (pid {child.pid}): dbkeeper {' '.join(step)}", "service", name, pid=child.pid)
                while child.poll() is None and not self._stop.wait(0.5):
                    pass
                if child.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.pid, signal.SIGTERM)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        child.wait(timeout=self.grace)
                    return  # leaving the with kills it if it is still running
                code = child.wait()
                error = _error_line(child.stderr_text())
            if self._stop.wait(0.5):  # stopped together with us (a container's or a cgroup's SIGTERM to all)
                return
            # One that keeps failing at once (a config to fix) is tried ever less often, up to every 5 minutes.
            delay = self.restart_s if time.monotonic() - started > 60 else min(delay * 2, MAX_RESTART_S)
            self.log(
                f"{name} ended: exit {code}{f' ({error})' if error else ''}; starting it again in"
                f" {format_seconds(delay)}",
                "service",
                name,
                exit_code=code,
                error=error or None,
            )
            self._stop.wait(delay)

    def run_due(self) -> int:
        """Run every job due this minute, then return the first non-zero exit code (or 0)."""
        now = self.clock()
        jobs = due(self.jobs, now)
        if not jobs:
            self.log(f"nothing due at {iso(now)[:16]}Z", "nothing-due")
        codes = [self.run(job) for job in jobs if not self.stopping]
        return next((code for code in codes if code), 0)

    def run(self, job: Job) -> int:
        """Run one job's steps now; return the exit code of the last step that ran."""
        self.log(f"start {job.name}: {job.describe()}", "start", job.name)
        notifier = self.notifier_for(job.name) if self.notifier_for else None
        if notifier is not None:
            notifier.ping("/start")
        t0 = time.monotonic()
        code, error, step = 0, "", job.steps[0]
        for step in job.steps:
            code, error = self._step(step, job.name)
            if code or self.stopping:
                break
        how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        why = f" ({step[0]}: {error})" if code and error else ""
        stopped = ", interrupted by stop" if self.stopping else ""
        seconds = time.monotonic() - t0
        self.log(
            f"finish {job.name}: {how} in {format_seconds(seconds)}{stopped}{why}",
            "finish",
            job.name,
            exit_code=code,
            seconds=round(seconds, 3),
            error=error or None,
        )
        if notifier is not None:
            ok = code == 0 and not self.stopping
            host = socket.gethostname()
            summary = f"finish {job.name}: {how} in {format_seconds(seconds)}{stopped}{why}"
            notifier.ping("" if ok else "/fail", f"dbkeeper {job.name} {'OK' if ok else 'FAILED'} on {host}: {summary}")
        return 1 if code < 0 else code

    def _argv(self, step: Step) -> list[str]:
        """The command line of a job's step or a service: dbkeeper with the config it was given."""
        return [*self.dbkeeper, *(["--config", self.config] if self.config else []), *step]

    def _step(self, step: Step, job: str) -> tuple[int, str]:
        argv = self._argv(step)
        # With events (--json) our stdout carries only them: a step's own output goes to stderr instead.
        stdout = sys.stderr.fileno() if self._events is not None else None
        env = {**os.environ, SCHEDULED_JOB_ENV: job}
        sys.stdout.flush()
        # The step's stderr reaches the log as it comes (a long backup's progress, with the log's own times),
        # and its tail is kept for the line that says what failed.
        with proc.Process(
            argv,
            env=env,
            stdout=stdout,
            cwd=self.cwd,
            new_session=True,
            stderr_echo=getattr(sys.stderr, "buffer", None),
        ) as child:
            code = self._wait(child)
            stderr = child.stderr_text()
        return code, _error_line(stderr)

    def _wait(self, child: proc.Process) -> int:
        deadline: float | None = None
        while True:
            try:
                return child.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            if not self.stopping:
                continue
            if deadline is None:
                deadline = time.monotonic() + self.grace
                self.log(
                    f"stopping: interrupting pid {child.pid}, killing it if still running in {self.grace:g}s",
                    "stopping",
                    pid=child.pid,
                )
                with contextlib.suppress(ProcessLookupError):  # it may have ended just now
                    os.kill(child.pid, signal.SIGINT)
            elif time.monotonic() > deadline:
                child.kill()


def _error_line(stderr: str) -> str:
    """The line that says what failed: dbkeeper's ``error:`` line, else the last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    return (errors or lines or [""])[0 if errors else -1]
