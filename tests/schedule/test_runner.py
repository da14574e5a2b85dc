"""The foreground scheduler with an injected clock, running real dbkeeper commands as its jobs."""

from __future__ import annotations

import re
import sqlite3
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dbkeeper.cron import parse
from dbkeeper.schedule import Job
from dbkeeper.schedule.runner import Runner
from helpers import backup_files, make_sqlite_app


class FakeClock:
    """UTC time that moves only when the runner sleeps (or a test moves it)."""

    def __init__(self, start: str) -> None:
        self.now = datetime.fromisoformat(start).replace(tzinfo=UTC)
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    make_sqlite_app(tmp_path / "app.db", users=10, sessions=10)
    return tmp_path


def job(name: str, expr: str, *steps: tuple[str, ...]) -> Job:
    return Job(name, parse(expr), steps, "test")


def runner(app: Path, jobs: list[Job], clock: FakeClock, lines: list[str], grace: float = 30.0) -> Runner:
    return Runner(jobs, config=None, cwd=str(app), log=lines.append, clock=clock, sleep=clock.sleep, grace=grace)


def messages(lines: list[str]) -> list[str]:
    """Log lines without their durations, which vary."""
    return [re.sub(r" in (\d+ms|\d+(\.\d+)?s)", " in Ns", line) for line in lines]


def finishes(lines: list[str]) -> int:
    return sum(" finish " in line for line in lines)


def test_jobs_run_when_due_in_order_and_the_loop_stops_cleanly(app: Path) -> None:
    clock, lines = FakeClock("2026-11-27T01:59:30"), list[str]()
    jobs = [
        job("backup", "0 2 * * *", ("backup", "sqlite:///app.db")),
        job("drill", "30 2 * * *", ("verify", "latest")),
    ]

    def log(line: str) -> None:
        lines.append(line)
        if finishes(lines) == 2:
            r.stop()

    r = Runner(jobs, config=None, cwd=str(app), log=log, clock=clock, sleep=clock.sleep)
    r.serve()
    assert messages(lines) == [
        '2026-11-27T01:59:30Z dbkeeper schedule: backup (test "0 2 * * *") next at 2026-11-27T02:00:00Z:'
        " dbkeeper backup sqlite:///app.db",
        '2026-11-27T01:59:30Z dbkeeper schedule: drill (test "30 2 * * *") next at 2026-11-27T02:30:00Z:'
        " dbkeeper verify latest",
        "2026-11-27T02:00:00Z dbkeeper schedule: start backup: dbkeeper backup sqlite:///app.db",
        "2026-11-27T02:00:00Z dbkeeper schedule: finish backup: exit 0 in Ns",
        "2026-11-27T02:00:00Z dbkeeper schedule: backup next at 2026-11-28T02:00:00Z",
        "2026-11-27T02:30:00Z dbkeeper schedule: start drill: dbkeeper verify latest",
        "2026-11-27T02:30:00Z dbkeeper schedule: finish drill: exit 0 in Ns",
        "2026-11-27T02:30:00Z dbkeeper schedule: stopped",
    ]
    assert clock.slept == [30.0] + [60.0] * 30  # never more than a minute at a time
    assert len(backup_files(app / "backups")) == 3


def test_a_failing_job_is_logged_and_the_loop_goes_on_without_overlap_or_replays(app: Path) -> None:
    """Every minute, a job that fails and takes 150 s: it never overlaps itself, the runs it missed are not
    replayed (02:03, not 02:01 and 02:02), and each failure is logged with its error."""
    clock, lines = FakeClock("2026-11-27T01:59:59"), list[str]()

    def log(line: str) -> None:
        lines.append(line)
        if " start " in line:
            clock.now += timedelta(seconds=150)
        if finishes(lines) == 3:
            r.stop()

    r = Runner(
        [job("backup", "* * * * *", ("backup", "sqlite:///missing.db"))],
        config=None,
        cwd=str(app),
        log=log,
        clock=clock,
        sleep=clock.sleep,
    )
    r.serve()
    starts = [line[:20] for line in lines if " start " in line]
    assert starts == ["2026-11-27T02:00:00Z", "2026-11-27T02:03:00Z", "2026-11-27T02:06:00Z"]
    ends = [line.split(": ", 1)[1] for line in messages(lines) if " finish " in line]
    assert (
        ends == ["finish backup: exit 1 in Ns (backup: dbkeeper: error: SQLite database missing.db does not exist)"] * 3
    )
    assert "backup next at 2026-11-27T02:03:00Z" in lines[3]


def test_run_due_runs_what_is_due_this_minute(app: Path) -> None:
    jobs = [job("backup", "0 2 * * *", ("backup", "sqlite:///app.db")), job("drill", "0 2 * * *", ("list",))]
    lines: list[str] = []
    assert runner(app, jobs, FakeClock("2026-11-27T02:00:40"), lines).run_due() == 0
    assert [line.split(": ", 1)[1] for line in messages(lines)] == [
        "start backup: dbkeeper backup sqlite:///app.db",
        "finish backup: exit 0 in Ns",
        "start drill: dbkeeper list",
        "finish drill: exit 0 in Ns",
    ]
    lines.clear()
    assert runner(app, jobs, FakeClock("2026-11-27T02:01:00"), lines).run_due() == 0
    assert lines == ["2026-11-27T02:01:00Z dbkeeper schedule: nothing due at 2026-11-27T02:01Z"]
    failing = [job("backup", "0 2 * * *", ("backup", "sqlite:///missing.db")), job("drill", "0 2 * * *", ("list",))]
    assert runner(app, failing, FakeClock("2026-11-27T02:00:00"), lines).run_due() == 1


def test_stop_interrupts_a_running_job_and_kills_it_after_the_grace_period(app: Path) -> None:
    """A SQLite source locked by another connection: the backup waits inside SQLite, where SIGINT cannot reach
    it, so the grace period ends with a kill."""
    conn = sqlite3.connect(app / "app.db", isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    clock, lines = FakeClock("2026-11-27T02:00:00"), list[str]()
    r = runner(app, [job("backup", "0 2 * * *", ("backup", "sqlite:///app.db"))], clock, lines, grace=1.0)
    threading.Timer(1.0, r.stop).start()
    t0 = time.monotonic()
    try:
        assert r.run(r.jobs[0]) == 1
    finally:
        conn.execute("ROLLBACK")
        conn.close()
    assert time.monotonic() - t0 < 10
    assert "stopping: interrupting pid " in lines[1]
    assert lines[2].endswith(", interrupted by stop") and "killed by signal 9" in lines[2]
    assert [f for f in backup_files(app / "backups") if not f.startswith(".")] == []


def test_the_backup_jobs_ping_comes_after_its_prune_and_the_steps_do_not_ping(app: Path) -> None:
    """schedule run --now backup runs backup, then prune; the dead-man's switch hears success only once both
    ran (each step's own notification, on = "always", arrives first), and the steps never ping themselves."""
    from helpers import run_dbkeeper
    from httpd import Recorder

    with Recorder() as server:
        where = server.url.removeprefix("http://")
        (app / "dbkeeper.toml").write_text(
            '[[sources]]\nname = "app"\nurl = "sqlite:///app.db"\n[retention]\nkeep_last = 1\n'
            f'[notify]\nping_url = "{server.url}/ping/TOKEN"\nurls = ["json://{where}/said"]\non = "always"\n'
        )
        assert run_dbkeeper("backup", cwd=app).returncode == 0  # one to prune (without the scheduler: it pings)
        assert server.paths() == ["/ping/TOKEN/start", "/ping/TOKEN", "/said"]
        server.requests.clear()
        result = run_dbkeeper("schedule", "run", "--now", "backup", cwd=app)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "start backup: dbkeeper backup && dbkeeper prune" in result.stdout
        assert server.paths() == ["/ping/TOKEN/start", "/said", "/said", "/ping/TOKEN"]
        titles = [r.json()["title"] for r in server.requests[1:3]]
        assert [t.split(" on ")[0] for t in titles] == ["dbkeeper backup OK", "dbkeeper prune OK"]
        assert "removed 1" in server.requests[2].json()["message"]
        assert server.requests[3].text.startswith("dbkeeper backup OK on ")
        assert len([f for f in backup_files(app / "backups") if f.endswith(".gz")]) == 1  # one set left

        # A failing prune (a policy that cannot decide) fails the whole job's ping, after the backup's success.
        (app / "dbkeeper.toml").write_text(
            (app / "dbkeeper.toml").read_text().replace("keep_last = 1", "keep_last = 0")
        )
        server.requests.clear()
        result = run_dbkeeper("schedule", "run", "--now", "backup", cwd=app)
        assert result.returncode != 0
        assert server.paths()[0] == "/ping/TOKEN/start" and server.paths()[-1] == "/ping/TOKEN/fail"
        assert [r.json()["title"].split(" on ")[0] for r in server.requests[1:-1]] == [
            "dbkeeper backup OK",
            "dbkeeper prune FAILED",
        ]
        assert "finish backup: exit" in server.requests[-1].text and "prune" in server.requests[-1].text


def test_a_service_is_kept_running_beside_the_jobs_and_started_again_when_it_ends(app: Path) -> None:
    """The ledger beside the jobs of a container: here it ends at once (no config names a source), is started
    again after restart_s, and the loop stops promptly with it."""
    lines: list[str] = []
    r = Runner(
        [job("drill", "0 0 1 1 *", ("drill",))],  # not due while the test runs
        config=None,
        cwd=str(app),
        log=lines.append,
        services=[("ledger",)],
        restart_s=0.3,
    )
    stopped_at: list[float] = []

    def stop_after_a_restart() -> None:  # however slow this host starts a process
        deadline = time.monotonic() + 60
        while sum(" ledger started (pid " in line for line in list(lines)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        stopped_at.append(time.monotonic())
        r.stop()

    threading.Thread(target=stop_after_a_restart, daemon=True).start()
    r.serve()
    assert time.monotonic() - stopped_at[0] < 15  # promptly, the service with it
    started = [line for line in lines if " ledger started (pid " in line]
    ended = [line for line in lines if " ledger ended: exit 2 (dbkeeper: error: no source to write the ledger" in line]
    assert len(started) >= 2 and len(ended) >= 1, lines
    assert "starting it again in 600ms" in ended[0], ended[0]  # twice restart_s: it failed at once
    assert len(ended) < 2 or "starting it again in 1.20s" in ended[1], ended
    assert lines[-1].endswith("dbkeeper schedule: stopped")


def test_whatever_ends_the_loop_ends_its_services(app: Path) -> None:
    """`schedule run --json | head`: the reader goes away, the loop's next line raises, and the service (the
    ledger) must not be left running on its own, to be started a second time by the next scheduler."""
    import os

    lines: list[str] = []

    def gone(seconds: float) -> None:
        deadline = time.monotonic() + 60
        while not any(" ledger started (pid " in line for line in list(lines)) and time.monotonic() < deadline:
            time.sleep(0.1)  # until the service has started
        raise BrokenPipeError("the reader of the events went away")

    script = app / "forever.py"
    script.write_text("import time\nwhile True:\n    time.sleep(1)\n")
    r = Runner(
        [job("drill", "0 0 1 1 *", ("drill",))],
        config=None,
        cwd=str(app),
        log=lines.append,
        sleep=gone,
        dbkeeper=(sys.executable, str(script)),  # a service that runs until stopped
        services=[("ledger",)],
        grace=5.0,
    )
    with pytest.raises(BrokenPipeError):
        r.serve()
    [started] = [line for line in lines if " ledger started (pid " in line]
    pid = int(started.split("(pid ")[1].split(")")[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
