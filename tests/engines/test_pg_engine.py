"""PostgreSQL end to end through the CLI against real servers: the round trip over every hard case, and what
each failure of the runbook's error table gets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hard_cases import HARD_CASES_ROW_COUNTS
from helpers import backup_files, cli, cli_json, run_dbkeeper
from pg import Cluster, PgDb
from pgutil import comparable_dump, databases, unquote_qualified


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg15: Cluster) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PGPASSWORD", pg15.env()["PGPASSWORD"])
    return tmp_path


def test_round_trip_of_every_hard_case(hard_db: PgDb, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cluster, name = hard_db
    code, doc = cli_json(capsys, "backup", hard_db.url)
    assert code == 0, doc
    manifest = doc["backups"][0]["manifest"]
    assert manifest["engine"] == "postgresql" and manifest["server_version"] == cluster.version
    assert manifest["server_encoding"] == "UTF8" and manifest["dump_tool_version"].startswith("15.")
    counts = {unquote_qualified(k): v for k, v in manifest["row_counts"].items()}
    assert counts == HARD_CASES_ROW_COUNTS
    files = backup_files(tmp_path / "backups")
    source, _, file = files[0].partition("/")
    assert source == manifest["source_id"] and source.startswith(f"127.0.0.1-{cluster.port}-{name}-")
    assert file == manifest["file"] and file.startswith(f"{name}_") and file.endswith(".sql.gz")
    assert subprocess.run(["sha256sum", "-c", file + ".sha256"], cwd=tmp_path / "backups" / source).returncode == 0
    assert subprocess.run(["gzip", "-t", files[0]], cwd=tmp_path / "backups").returncode == 0

    code, out, _ = cli(capsys, "verify", "latest", "--database", name)
    assert code == 0 and "verified" in out

    target = f"{name}_restored"
    code, result = cli_json(capsys, "restore", "latest", cluster.url(target), "--database", name)
    assert code == 0, result
    assert result["rows"] == sum(HARD_CASES_ROW_COUNTS.values())
    assert comparable_dump(cluster, target) == comparable_dump(cluster, name)
    assert not [d for d in databases(cluster) if "dbkeeper_tmp" in d]
    cluster.drop_db(target)


def test_pg_environment_and_pg_dump_style_flags(
    pgdb: PgDb, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, name = pgdb
    cluster.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 10) g", db=name)
    code, doc = cli_json(capsys, "backup", "-h", cluster.host, "-p", str(cluster.port), "-U", "postgres", "-d", name)
    assert code == 0 and doc["backups"][0]["manifest"]["row_counts"] == {"public.t": 10}
    monkeypatch.setenv("PGHOST", cluster.host)
    monkeypatch.setenv("PGPORT", str(cluster.port))
    monkeypatch.setenv("PGUSER", "postgres")
    monkeypatch.setenv("PGDATABASE", name)
    code, doc = cli_json(capsys, "backup")
    assert code == 0 and doc["backups"][0]["manifest"]["database"] == name


def test_password_from_pgpass_and_never_shown(
    pgdb: PgDb, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, _name = pgdb
    password = cluster.env()["PGPASSWORD"]
    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{cluster.host}:{cluster.port}:*:postgres:{password}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    assert cli(capsys, "backup", pgdb.url)[0] == 0
    monkeypatch.delenv("PGPASSFILE")
    # A password in the URL works too, and appears nowhere: not in output, the store, or any process's argv.
    url = pgdb.url.replace("postgres@", f"postgres:{password}@")
    code, out, err = cli(capsys, "backup", url, "--json")
    assert code == 0 and password not in out + err
    for f in (tmp_path / "backups").rglob("*"):
        assert f.is_dir() or password.encode() not in f.read_bytes() or f.suffix == ".gz"
        assert password not in f.name
    assert all(password not in json.loads(f.read_text()).__repr__() for f in (tmp_path / "backups").rglob("*.json"))


@pytest.mark.parametrize(
    "case,message,hint",
    [
        ("bad-password", "authentication failed for postgres", "PGPASSWORD or ~/.pgpass"),
        ("no-password", "wants a password and none was given", "~/.pgpass"),
        ("bad-port", "cannot reach PostgreSQL at 127.0.0.1:1", "the host and port"),
        ("bad-host", "unknown host no-such-host.invalid", "host name"),
        ("missing-db", "database nope_missing does not exist", "psql -l"),
    ],
)
def test_connection_failures_get_the_runbook_message(
    pg15: Cluster, tmp_path: Path, case: str, message: str, hint: str
) -> None:
    url = {
        "bad-port": "postgresql://postgres@127.0.0.1:1/x",
        "bad-host": "postgresql://postgres@no-such-host.invalid/x",
        "missing-db": pg15.url("nope_missing"),
    }.get(case, pg15.url("postgres"))
    env = {"PGPASSWORD": "wrong" if case == "bad-password" else pg15.env()["PGPASSWORD"]}
    if case == "no-password":
        env = {"PGPASSWORD": "", "PGPASSFILE": str(tmp_path / "none")}
    result = run_dbkeeper("backup", url, env=env, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("dbkeeper: error: ") and message in lines[0], result.stderr
    assert lines[1].startswith("  Try: ") and hint in lines[1]
    assert len(lines) == 2 and "Traceback" not in result.stderr
    assert backup_files(tmp_path / "backups") == []


def test_server_newer_than_every_pg_dump_says_what_is_needed(pg17: Cluster, tmp_path: Path) -> None:
    pg17.psql("DROP DATABASE IF EXISTS v17; CREATE DATABASE v17")
    pg17.psql("CREATE TABLE t AS SELECT 1 AS x", db="v17")
    env = {"PGPASSWORD": pg17.env()["PGPASSWORD"], "PATH": "/usr/bin:/bin"}
    result = run_dbkeeper("backup", pg17.url("v17"), env=env, timeout=60)
    assert result.returncode == 1
    assert "the server is PostgreSQL 17 but the newest pg_dump found" in result.stderr
    assert "postgresql-client-17" in result.stderr and "--pg-bin" in result.stderr
    assert backup_files(tmp_path / "backups") == []
    ok = run_dbkeeper("backup", pg17.url("v17"), "--pg-bin", str(pg17.bindir), "--json", env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    manifest = json.loads(ok.stdout)["backups"][0]["manifest"]
    assert manifest["server_version"].startswith("17.") and manifest["dump_tool_version"].startswith("17.")


def _big_table(cluster: Cluster, db: str, rows: int = 3_000_000) -> None:
    cluster.psql(
        f"CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS payload"
        f" FROM generate_series(1, {rows}) g",
        db=db,
    )


def _wait_for_temp_file(store: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if store.exists() and any(p.name.endswith(".dbkeeper-tmp") and p.stat().st_size > 0 for p in store.rglob("*")):
            return
        time.sleep(0.01)
    raise AssertionError("the backup never started writing")


def test_pg_dump_dying_halfway_leaves_no_backup(pgdb: PgDb, tmp_path: Path) -> None:
    cluster, name = pgdb
    _big_table(cluster, name)
    store = tmp_path / "backups"
    proc = subprocess.Popen(
        ["python", "-m", "dbkeeper", "backup", pgdb.url, "--compress", "none"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PGPASSWORD": cluster.env()["PGPASSWORD"]},
    )
    _wait_for_temp_file(store, proc)
    # Kill pg_dump's server session mid-COPY: pg_dump fails for real, halfway through the data.
    killed = cluster.psql(
        f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{name}' AND query LIKE 'COPY%'"
    )
    _, err = proc.communicate(timeout=60)
    assert killed.strip() == "1"
    assert proc.returncode == 1
    assert err.decode().startswith("dbkeeper: error: pg_dump of ") and "Traceback" not in err.decode()
    assert backup_files(store) == []
    assert run_dbkeeper("backup", pgdb.url, env=cluster.env()).returncode == 0
    assert len(backup_files(store)) == 3


def test_sigkill_mid_dump_leaves_nothing_that_looks_like_a_backup(pgdb: PgDb, tmp_path: Path) -> None:
    cluster, name = pgdb
    _big_table(cluster, name, 1_000_000)
    store = tmp_path / "backups"
    password = cluster.env()["PGPASSWORD"]
    url = pgdb.url.replace("postgres@", f"postgres:{password}@")
    proc = subprocess.Popen(
        ["python", "-m", "dbkeeper", "backup", url, "--compress", "none"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PGPASSWORD": ""},
    )
    _wait_for_temp_file(store, proc)
    # While it runs: the password is in no child's command line (pg_dump gets it through its environment).
    # dbkeeper's own argv holds what the user typed; the README tells them to use ~/.pgpass instead.
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        if cmdline.parent.name == str(proc.pid):
            continue
        try:
            assert password.encode() not in cmdline.read_bytes()
        except OSError:
            continue
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert [f for f in backup_files(store) if ".dbkeeper-tmp" not in f] == []
    listing = run_dbkeeper("list", "--json")
    assert json.loads(listing.stdout)["backups"] == []
    assert run_dbkeeper("backup", pgdb.url, env=cluster.env()).returncode == 0


def test_disk_full_during_dump_is_a_clear_error(pgdb: PgDb, tmp_path: Path) -> None:
    cluster, name = pgdb
    _big_table(cluster, name, 200_000)

    def limit() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    result = run_dbkeeper("backup", pgdb.url, "--compress", "none", env=cluster.env(), preexec_fn=limit)
    assert result.returncode == 1
    assert result.stderr.startswith("dbkeeper: error: no space left while writing")
    assert "Traceback" not in result.stderr
    assert backup_files(tmp_path / "backups") == []


def test_watchdog_stops_a_dump_blocked_on_a_lock(pgdb: PgDb, tmp_path: Path) -> None:
    cluster, name = pgdb
    cluster.psql("CREATE TABLE busy AS SELECT 1 AS x", db=name)
    # Another session holds an ACCESS EXCLUSIVE lock: pg_dump waits for it, silently, forever.
    holder = subprocess.Popen(
        [cluster.tool("psql"), "-X", "-d", name, "-c", "BEGIN; LOCK TABLE busy; SELECT pg_sleep(120);"],
        env=cluster.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        started = time.monotonic()
        result = run_dbkeeper("backup", pgdb.url, "--stall-timeout", "2", env=cluster.env(), timeout=60)
        elapsed = time.monotonic() - started
        # Its server session, which would wait for the lock long after pg_dump died, was ended too.
        query = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}' AND application_name LIKE 'dbkeeper%'"
        for _ in range(20):  # pg_terminate_backend signals; the session takes a moment to go
            if (sessions_after := cluster.psql(query)) == "0":
                break
            time.sleep(0.1)
    finally:
        holder.kill()
        holder.wait()
    assert sessions_after == "0"
    assert result.returncode == 1
    assert "made no progress for 2 s and was stopped" in result.stderr and "pg_stat_activity" in result.stderr
    assert elapsed < 20
    assert backup_files(tmp_path / "backups") == []


def test_many_sources_at_once_keep_their_order(
    pg15: Cluster, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    names = [f"many_{i:02d}" for i in range(12)]
    for i, name in enumerate(names):
        pg15.psql(f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}")
        pg15.psql(f"CREATE TABLE t AS SELECT g FROM generate_series(1, {i + 1}) g", db=name)
    code, doc = cli_json(capsys, "backup", *(pg15.url(n) for n in names), "--parallel-sources", "4")
    assert code == 0 and doc["ok"]
    assert [b["manifest"]["database"] for b in doc["backups"]] == names
    assert [b["manifest"]["row_counts"]["public.t"] for b in doc["backups"]] == list(range(1, 13))
    assert len(backup_files(tmp_path / "backups")) == 36
    code, _, err = cli(capsys, "backup", pg15.url(names[0]), "--parallel-sources", "0")
    assert code == 2 and "--parallel-sources must be at least 1" in err


def test_globals_kept_beside_the_database(pgdb: PgDb, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cluster, name = pgdb
    cluster.psql("DO $$ BEGIN CREATE ROLE casino_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    cluster.psql("CREATE TABLE t AS SELECT 1 AS x", db=name)
    code, doc = cli_json(capsys, "backup", pgdb.url, "--globals")
    assert code == 0, doc
    kinds = [(b["manifest"]["database"], b["manifest"]["dump_format"]) for b in doc["backups"]]
    assert kinds == [(name, "plain"), (f"{name}.globals", "globals")]
    globals_file = doc["backups"][1]["name"]
    assert doc["backups"][0]["source_id"] == doc["backups"][1]["source_id"]  # kept beside the database
    assert globals_file.split("/")[1].startswith(f"{name}.globals_") and globals_file.endswith(".sql.gz")
    text = subprocess.run(["zcat", str(tmp_path / "backups" / globals_file)], capture_output=True, text=True).stdout
    assert "CREATE ROLE casino_reader;" in text and "cluster dump complete" in text
    code, out, _ = cli(capsys, "verify", str(tmp_path / "backups" / globals_file))
    assert code == 0 and "verified" in out
    code, _, err = cli(capsys, "restore", str(tmp_path / "backups" / globals_file), cluster.url("x"))
    assert code == 2 and "roles and tablespaces, not a database" in err and "restore --globals" in err
