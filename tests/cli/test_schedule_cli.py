"""dbkeeper schedule install | run | show through the CLI: files systemd and sh accept, a foreground
scheduler that survives failures and stops cleanly on SIGTERM. Nothing is written outside tmp_path."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import backup_files, cli, cli_json, make_sqlite_app, run_dbkeeper, wait_for_lock
from pg import PgDb
from pgutil import TableLock


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """An app directory whose name needs quoting, with a SQLite database and a config naming it."""
    app = tmp_path / "my app"
    app.mkdir()
    make_sqlite_app(app / "app.db", users=10, sessions=10)
    write_config(app, "")
    return app


def write_config(app: Path, schedule: str, source: str = "sqlite:///app.db") -> Path:
    path = app / "dbkeeper.toml"
    path.write_text(f'[[sources]]\nname = "app"\nurl = "{source}"\n[schedule]\n{schedule}')
    return path


@pytest.fixture
def wrapper(tmp_path: Path) -> Path:
    """An installed ``dbkeeper`` as a job would find it: this interpreter, this checkout."""
    path = tmp_path / "bin" / "dbkeeper"
    path.parent.mkdir()
    path.write_text(f'#!/bin/sh\nexec {sys.executable} -m dbkeeper "$@"\n')
    path.chmod(0o755)
    return path


def install(capsys: pytest.CaptureFixture[str], app: Path, *argv: str) -> tuple[int, str, str]:
    return cli(capsys, "schedule", "install", *argv, "--config", str(app / "dbkeeper.toml"))


# -- install ------------------------------------------------------------------------------------------------


def test_systemd_dry_run_prints_units_and_writes_nothing(
    app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "units"
    code, out, err = install(
        capsys, app, "--systemd", "--dry-run", "--dbkeeper", "/usr/local/bin/dbkeeper", "--dest", str(dest)
    )
    assert code == 0 and err == ""
    assert not dest.exists()
    assert f"# --- {dest}/dbkeeper-backup.service (dry run: not written) ---" in out
    assert f"# --- {dest}/dbkeeper-drill.timer (dry run: not written) ---" in out
    config = app / "dbkeeper.toml"
    assert f'ExecStart=/usr/local/bin/dbkeeper --config "{config}" schedule run --now backup\n' in out
    assert f'ExecStart=/usr/local/bin/dbkeeper --config "{config}" schedule run --now drill\n' in out
    assert f"WorkingDirectory={app}\n" in out
    assert "OnCalendar=*-*-* 02:00:00 UTC\n" in out and "OnCalendar=Sun *-*-* 04:00:00 UTC\n" in out
    assert out.count("Persistent=true\nRandomizedDelaySec=0\n") == 2
    assert (
        "# then turn the timers on: systemctl daemon-reload && systemctl enable --now dbkeeper-backup.timer"
        " dbkeeper-drill.timer" in out
    )


def test_systemd_install_writes_units_that_systemd_accepts(
    app: Path, tmp_path: Path, wrapper: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.fail("systemd-analyze not found: install systemd (scripts/install-test-deps does)", pytrace=False)
    write_config(app, 'backup = "*/15 9-17 * * mon-fri"\ndrill = "@monthly"\n')
    dest = tmp_path / "units"
    code, out, _ = install(capsys, app, "--systemd", "--dbkeeper", str(wrapper), "--dest", str(dest))
    assert code == 0
    names = ["dbkeeper-backup.service", "dbkeeper-backup.timer", "dbkeeper-drill.service", "dbkeeper-drill.timer"]
    assert sorted(os.listdir(dest)) == names  # no temporary files left
    assert all(oct((dest / n).stat().st_mode & 0o777) == "0o644" for n in names)
    assert out.splitlines()[:4] == [f"wrote {dest / n}" for n in names]
    assert "OnCalendar=Mon..Fri *-*-* 09..17:00,15,30,45:00 UTC" in (dest / "dbkeeper-backup.timer").read_text()
    assert "systemctl daemon-reload && systemctl enable --now dbkeeper-backup.timer dbkeeper-drill.timer" in out
    check = subprocess.run([analyze, "verify", *(str(dest / n) for n in names)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_reinstall_leaves_units_of_a_job_no_longer_scheduled_with_a_note(
    app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "units"
    write_config(app, 'prune = "0 3 * * *"\n')
    assert install(capsys, app, "--systemd", "--dest", str(dest))[0] == 0
    assert (dest / "dbkeeper-prune.timer").exists()
    write_config(app, "")  # prune chained after backup again
    code, out, _ = install(capsys, app, "--systemd", "--dest", str(dest))
    assert code == 0 and (dest / "dbkeeper-prune.timer").exists()
    assert f"# note: {dest / 'dbkeeper-prune.timer'} is from an earlier install and no longer scheduled" in out


def test_cron_install_writes_a_file_whose_lines_run_for_real(
    app: Path, tmp_path: Path, wrapper: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(app, 'prune = "off"\ndrill = "off"\n')
    dest, log = tmp_path / "cron.d", tmp_path / "dbkeeper.log"
    code, out, _ = install(capsys, app, "--cron", "--dbkeeper", str(wrapper), "--dest", str(dest), "--log", str(log))
    assert code == 0 and out.startswith(f"wrote {dest / 'dbkeeper'}\n")
    assert "# cron reads /etc/cron.d/dbkeeper by itself: nothing to enable" in out
    cron = (dest / "dbkeeper").read_text()
    assert oct((dest / "dbkeeper").stat().st_mode & 0o777) == "0o644"
    assert "CRON_TZ=UTC\n" in cron and "SHELL=/bin/sh\n" in cron and "\nPATH=" in cron
    line = cron.splitlines()[-1]
    minute, hour, dom, month, dow, user, command = line.split(" ", 6)
    assert (minute, hour, dom, month, dow) == ("0", "2", "*", "*", "*") and user
    done = subprocess.run(["sh", "-c", command.replace("\\%", "%")], cwd="/", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(backup_files(app / "backups")) == 3  # run in the config's directory
    assert str(app / "backups") not in log.read_text() and "backups/app/app_" in log.read_text()


def test_a_cron_line_pings_once_when_the_whole_job_has_ended(
    app: Path, tmp_path: Path, wrapper: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The installed backup job is backup, then prune; its dead-man's switch hears /start, then the outcome of the
    whole job: a prune that fails after a good backup is a /fail, not the backup's success."""
    from httpd import Recorder

    with Recorder() as server:
        (app / "dbkeeper.toml").write_text(
            '[[sources]]\nname = "app"\nurl = "sqlite:///app.db"\n[retention]\nkeep_last = 0\n'
            f'[notify]\nping_url = "{server.url}/ping/TOKEN"\n[schedule]\ndrill = "off"\n'
        )
        dest = tmp_path / "cron.d"
        assert install(capsys, app, "--cron", "--dbkeeper", str(wrapper), "--dest", str(dest))[0] == 0
        command = (dest / "dbkeeper").read_text().splitlines()[-1].split(" ", 6)[6]
        command = command.replace("\\%", "%").removesuffix(" 2>&1 | logger -t dbkeeper")
        done = subprocess.run(["sh", "-c", command], cwd="/", capture_output=True, text=True)
        assert done.returncode != 0 and "start backup: dbkeeper backup && dbkeeper prune" in done.stdout
        assert len(backup_files(app / "backups")) == 3  # the backup itself was made
        assert server.paths() == ["/ping/TOKEN/start", "/ping/TOKEN/fail"], server.paths()
        assert "prune" in server.requests[-1].text


def test_cron_user_dry_run_prints_the_crontab_block(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = install(capsys, app, "--cron", "--user", "--dry-run", "--dbkeeper", "/usr/bin/dbkeeper")
    assert code == 0
    assert "# --- your crontab (dry run: not changed) ---\n# BEGIN dbkeeper" in out
    assert "\n# END dbkeeper\n" in out and "CRON_TZ" not in out
    code, _, err = install(capsys, app, "--cron", "--user", "--dest", "/tmp/x")
    assert code == 2 and "--dest does not apply to a user's crontab" in err


def test_install_json(app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = cli_json(
        capsys, "schedule", "install", "--systemd", "--dry-run", "--user", "--config", str(app / "dbkeeper.toml")
    )
    assert code == 0 and doc["dry_run"]
    assert [Path(f["path"]).name for f in doc["files"]][:2] == ["dbkeeper-backup.service", "dbkeeper-backup.timer"]
    assert all("/systemd/user/" in f["path"] for f in doc["files"])
    assert doc["enable"].startswith("systemctl --user daemon-reload && systemctl --user enable --now")
    assert any("loginctl enable-linger" in note for note in doc["notes"])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (None, "schedule install needs a config file"),
        ("store = 'b'\n", "has no [[sources]]"),
        (
            '[[sources]]\nurl = "sqlite:///a.db"\n[schedule]\nbackup = "0 2 1 * 1"\n',
            "dbkeeper.toml: schedule.backup: '0 2 1 * 1' sets both a day of month and a day of week",
        ),
        (
            '[[sources]]\nurl = "sqlite:///a.db"\n[schedule]\nbackup = "0 2 * * * 2026"\n',
            "dbkeeper.toml: schedule.backup: '0 2 * * * 2026' has 6 fields",
        ),
        (
            '[[sources]]\nurl = "sqlite:///a.db"\n[schedule]\ncopy = "0 5 * * *"\n',
            "schedule.copy is set but copy_to names no store",
        ),
        (
            '[[sources]]\nurl = "sqlite:///a.db"\n[schedule]\nbackup = "off"\ndrill = "off"\n',
            "every job in [schedule] is off",
        ),
    ],
)
def test_install_refuses_what_it_cannot_schedule(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config: str | None,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DBKEEPER_CONFIG", raising=False)
    if config is not None:
        (tmp_path / "dbkeeper.toml").write_text(config)
    code, out, err = cli(capsys, "schedule", "install", "--cron", "--dry-run")
    assert code == 2 and message in err and "Traceback" not in err
    assert out == ""


# -- show and run -------------------------------------------------------------------------------------------


def test_show(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "--config", str(app / "dbkeeper.toml"), "schedule", "show")
    assert code == 0
    backup, drill = out.splitlines()
    assert backup.startswith("backup     0 2 * * *        default          next 20")  # as docs/SCHEDULING.md
    assert backup.endswith("dbkeeper backup && dbkeeper prune") and drill.endswith("dbkeeper drill")


def test_run_now_runs_one_job_in_the_configs_directory(app: Path, tmp_path: Path) -> None:
    write_config(app, 'prune = "off"\n')
    result = run_dbkeeper(
        "--config", str(app / "dbkeeper.toml"), "schedule", "run", "--now", "backup", cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("dbkeeper schedule: start backup: dbkeeper backup")
    assert lines[1].startswith("backups/app/app_")  # the job's own output, from the config's directory
    assert " dbkeeper schedule: finish backup: exit 0 in " in lines[2]
    assert len(backup_files(app / "backups")) == 3 and not (tmp_path / "backups").exists()


def test_run_now_names_a_job_that_is_not_scheduled(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "schedule", "run", "--now", "prune", "--config", str(app / "dbkeeper.toml"))
    assert code == 2 and "no scheduled job named prune" in err and "use backup" in err


def test_run_now_reports_a_failing_job_with_its_exit_code(app: Path) -> None:
    write_config(app, 'prune = "off"\n', source="sqlite:///missing.db")
    result = run_dbkeeper("schedule", "run", "--now", "backup", cwd=app, timeout=60)
    assert result.returncode == 1
    assert "finish backup: exit 1 in " in result.stdout
    assert "(backup: dbkeeper: error: SQLite database missing.db does not exist)" in result.stdout
    assert "dbkeeper: error: SQLite database missing.db does not exist" in result.stderr  # the job's own stderr


def test_sigterm_stops_an_idle_scheduler_with_exit_0(app: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbkeeper", "schedule", "run"], cwd=app, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert ' dbkeeper schedule: backup (default "0 2 * * *") next at ' in first
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert out.splitlines()[-1].endswith("dbkeeper schedule: stopped")


def test_with_the_pitr_drill_scheduled_the_foreground_scheduler_keeps_the_ledger_written(
    pgdb: PgDb, tmp_path: Path
) -> None:
    """In a container `schedule run` is the only supervisor: it runs `dbkeeper ledger` beside the jobs, and a
    SIGTERM stops both (exit 0, no ledger process left)."""
    import json

    from helpers import check_json as check

    schedule = 'backup = "off"\ndrill = "off"\nbasebackup = "off"\npitr-drill = "0 0 1 1 *"\n'
    config = write_config(tmp_path, schedule + '[pitr]\nsource = "app"\n', source=pgdb.url)
    # One run (--once, as a CronJob does) starts no service: nothing would stop it.
    once = run_dbkeeper("--config", str(config), "schedule", "run", "--once", "--json", cwd=tmp_path)
    assert once.returncode == 0 and [json.loads(x)["event"] for x in once.stdout.splitlines()] == ["nothing-due"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbkeeper", "--config", str(config), "schedule", "run", "--json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **pgdb.cluster.env()},
    )
    try:
        assert proc.stdout is not None
        events = [json.loads(proc.stdout.readline()) for _ in range(2)]
        service = next(e for e in events if e["event"] == "service")
        check(service, "schedule-run")
        assert service["job"] == "ledger" and service["pid"] > 0, events
        cluster, name = pgdb
        deadline = time.monotonic() + 30
        rows = ""
        while time.monotonic() < deadline and not rows:
            time.sleep(0.5)
            if cluster.psql("SELECT to_regclass('dbkeeper.ledger') IS NOT NULL", db=name).strip() == "t":
                rows = cluster.psql("SELECT id FROM dbkeeper.ledger", db=name).strip()
        assert rows, "the ledger wrote no row in 30 s"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert json.loads(out.splitlines()[-1])["event"] == "stopped"
    with pytest.raises(ProcessLookupError):
        os.kill(service["pid"], 0)


def test_sigterm_interrupts_a_running_backup_cleanly_and_exits_0(pgdb: PgDb, tmp_path: Path) -> None:
    """A backup waiting on a locked table (a slow source) is running when the container stops: the scheduler
    interrupts it (SIGINT: dbkeeper cleans up), exits 0, and no backup or temporary file is left."""
    cluster, name = pgdb
    cluster.psql("CREATE TABLE t AS SELECT 1 AS id", db=name)
    write_config(tmp_path, 'prune = "off"\n', source=pgdb.url)
    with TableLock(cluster, name, "t"):
        proc = subprocess.Popen(
            [sys.executable, "-m", "dbkeeper", "schedule", "run", "--now", "backup"],
            cwd=tmp_path,
            env=cluster.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for_lock()
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    # Under the 30 s grace, so stopped by SIGINT, not killed. Not under 1 s: when pg_dump has not yet written a
    # byte, streams.threaded waits up to 10 s for its reader thread before the dump is killed.
    assert time.monotonic() - t0 < 25
    assert "stopping: interrupting pid " in out
    assert "finish backup: exit 130 in " in out and ", interrupted by stop" in out
    assert "dbkeeper: interrupted; nothing partial was kept" in err
    assert backup_files(tmp_path / "backups") == []


def test_pitr_adds_a_wal_daemon_a_ledger_and_pitr_jobs_systemd_accepts(
    app: Path, tmp_path: Path, wrapper: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.fail("systemd-analyze not found: install systemd (scripts/install-test-deps does)", pytrace=False)
    pgdata = tmp_path / "pg data"
    pgdata.mkdir()
    config = write_config(app, "")
    config.write_text(config.read_text() + f'\n[pitr]\nsource = "app"\ndata_dir = "{pgdata}"\n')
    dest = tmp_path / "units"
    code, out, _ = install(capsys, app, "--systemd", "--dbkeeper", str(wrapper), "--dest", str(dest))
    assert code == 0
    unit = (dest / "dbkeeper-wal-daemon.service").read_text()
    assert "Restart=always" in unit and "Type=simple" in unit
    assert f'"{pgdata}"' in unit and "wal-daemon --data-dir" in unit
    # [pitr] source schedules base backups and the PITR drill, and the ledger that drill is judged by runs all
    # the time beside them.
    ledger = (dest / "dbkeeper-ledger.service").read_text()
    assert "Restart=always" in ledger and ledger.split("ExecStart=")[1].split("\n")[0].endswith(" ledger")
    assert "StartLimitIntervalSec=0" in ledger  # a database down at boot must not leave it stopped for good
    assert "ExecStart=" in (dest / "dbkeeper-basebackup.service").read_text()
    pitr_drill = (dest / "dbkeeper-pitr-drill.service").read_text()
    assert "schedule run --now pitr-drill" in pitr_drill
    assert "OnCalendar=Sun *-*-* 04:30:00 UTC" in (dest / "dbkeeper-pitr-drill.timer").read_text()
    assert (
        "enable --now dbkeeper-backup.timer dbkeeper-drill.timer dbkeeper-basebackup.timer dbkeeper-pitr-drill.timer"
        " dbkeeper-wal-daemon.service dbkeeper-ledger.service" in out
    )
    for name in ("dbkeeper-wal-daemon.service", "dbkeeper-ledger.service", "dbkeeper-pitr-drill.service"):
        check = subprocess.run([analyze, "verify", str(dest / name)], capture_output=True, text=True)
        assert check.returncode == 0, (name, check.stderr)
    # cron cannot supervise a daemon: said so.
    code, out, err = install(capsys, app, "--cron", "--dry-run", "--dest", str(tmp_path / "cron"))
    assert code == 0 and "cron cannot keep `dbkeeper wal-daemon` running" in out + err
    assert "the PITR drill is judged by the ledger, which cron cannot keep writing" in out + err
    assert "has no [[sources]] entry" not in out + err  # "app" is one
    config.write_text(config.read_text().replace('source = "app"', 'source = "casino-pg"'))
    code, out, err = install(capsys, app, "--systemd", "--dry-run")
    assert code == 0 and "[pitr] source 'casino-pg' has no [[sources]] entry of that name" in out + err
    assert "schedule run --now pitr-drill" in out and "schedule run --now basebackup" in out
    # schedule show lines the longer job names up.
    code, out, _ = cli(capsys, "schedule", "show", "--config", str(config))
    assert code == 0 and len({line.index(" next ") for line in out.splitlines()}) == 1, out
    # The PITR drill turned off: its timer and the ledger's service, which would keep writing into the source
    # database, are named with how to stop them.
    config.write_text(config.read_text().replace('source = "casino-pg"', 'source = "app"') + "\n")
    text = config.read_text().replace("[schedule]\n", '[schedule]\npitr-drill = "off"\n')
    config.write_text(text)
    code, out, _ = install(capsys, app, "--systemd", "--dbkeeper", str(wrapper), "--dest", str(dest))
    assert code == 0
    assert f"# note: {dest / 'dbkeeper-pitr-drill.timer'} is from an earlier install" in out
    assert (
        f"# note: {dest / 'dbkeeper-ledger.service'} is from an earlier install and no longer wanted, but keeps"
        " running until turned off; left alone. Stop it with: systemctl disable --now dbkeeper-ledger.service" in out
    )


def test_the_installed_weekly_drill_runs_in_a_sandbox_never_on_the_source_server(
    pgdb: PgDb, tmp_path: Path, wrapper: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `schedule install` enables by default: a weekly drill whose line, run as cron runs it, restores into a
    throwaway cluster and leaves the backed-up server (the production one) untouched: no database, no session."""
    cluster, name = pgdb
    cluster.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g", db=name)
    app = tmp_path / "app"
    app.mkdir()
    config = write_config(app, "", source=pgdb.url)
    env = cluster.env()  # PGPASSWORD, as cron would have it from the job's environment
    assert run_dbkeeper("--config", str(config), "backup", cwd=app, env=env).returncode == 0
    dest = tmp_path / "cron.d"
    code, out, _ = install(capsys, app, "--cron", "--dbkeeper", str(wrapper), "--dest", str(dest))
    assert code == 0, out
    [line] = [x for x in (dest / "dbkeeper").read_text().splitlines() if " drill)" in x]
    minute, hour, dom, month, dow, _user, command = line.split(" ", 6)
    assert (minute, hour, dom, month, dow) == ("0", "4", "*", "*", "0")  # on by default, Sundays 04:00 UTC
    assert "--target" not in command and str(cluster.port) not in command
    command = command.removesuffix(" 2>&1 | logger -t dbkeeper")  # its output here instead of syslog
    databases = "SELECT datname FROM pg_database ORDER BY 1"
    before = cluster.psql(databases)
    log_before = len(cluster.server_log())
    done = subprocess.run(["sh", "-c", command], cwd="/", capture_output=True, text=True, env={**os.environ, **env})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "in a throwaway PostgreSQL 15 cluster (as " in done.stdout
    assert cluster.psql(databases) == before
    assert "_drill_" not in cluster.server_log()[log_before:]  # it did not even ask the source server for one
    code, out, _ = install(capsys, app, "--systemd", "--dry-run", "--dbkeeper", str(wrapper))
    drill_unit = out.split("dbkeeper-drill.service (dry run: not written) ---")[1].split("# ---")[0]
    assert f"ExecStart={wrapper} --config {config} schedule run --now drill\n" in drill_unit
    assert "--target" not in drill_unit


def test_systemd_install_with_the_dashboard(
    app: Path, tmp_path: Path, wrapper: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--serve adds dbkeeper-serve.service (a service, no timer) that systemd accepts; cron cannot keep a server
    running and refuses --serve."""
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.fail("systemd-analyze not found: install systemd (scripts/install-test-deps does)", pytrace=False)
    write_config(app, "")
    dest = tmp_path / "units"
    code, out, _ = install(capsys, app, "--systemd", "--serve", "--dbkeeper", str(wrapper), "--dest", str(dest))
    assert code == 0
    unit = (dest / "dbkeeper-serve.service").read_text()
    config = app / "dbkeeper.toml"
    assert f'ExecStart={wrapper} --config "{config}" serve\n' in unit
    assert "Type=simple\n" in unit and "Restart=on-failure\n" in unit and "WantedBy=multi-user.target\n" in unit
    assert not (dest / "dbkeeper-serve.timer").exists()
    assert (
        "turn the timers and the dashboard on: systemctl daemon-reload && systemctl enable --now"
        " dbkeeper-backup.timer dbkeeper-drill.timer dbkeeper-serve.service" in out
    )
    check = subprocess.run([analyze, "verify", str(dest / "dbkeeper-serve.service")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    code, _out, err = install(capsys, app, "--cron", "--serve", "--dest", str(tmp_path / "cron.d"))
    assert code == 2 and "--serve needs --systemd" in err
