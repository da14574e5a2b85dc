"""One meaning per flag across commands, with PostgreSQL's conventions: -h is the host where a connection is
named (backup, restore) and help nowhere there (--help is); -d/--dbname names restore's target as it names
backup's source; the PG* environment and libpq connection strings work wherever a PostgreSQL URL does;
backup --parallel-sources (sources at once) is not restore --jobs (sessions per database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbkeeper.cli import build_parser, main
from helpers import cli, cli_json
from pg import PASSWORD, Cluster, PgDb


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "DBKEEPER_STORE", "DBKEEPER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    return tmp_path


CONNECTING = {"backup", "restore"}


def _commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", _commands())
def test_h_is_the_host_where_a_connection_is_named_and_help_everywhere_else(command: str) -> None:
    parser = build_parser(command)
    sub = next(a for a in parser._actions if a.dest == "command")
    p = sub.choices[command]  # type: ignore[index]
    by_flag = {flag: action for action in p._actions for flag in action.option_strings}
    assert "--help" in by_flag
    if command in CONNECTING:
        assert by_flag["-h"].dest == "host" and by_flag["--host"].dest == "host"
        assert by_flag["-d"].dest == "dbname" and by_flag["-U"].dest == "username" and by_flag["-p"].dest == "port"
    elif "-h" in by_flag:
        assert by_flag["-h"] is by_flag["--help"]


def _sets(capsys: pytest.CaptureFixture[str]) -> int:
    _code, doc = cli_json(capsys, "list")
    return len(doc["backups"])


def test_a_libpq_connection_string_is_a_source_and_a_target(
    hard_db: PgDb, pg15: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"host={pg15.host} port={pg15.port} user=postgres dbname={hard_db.name}"
    code, doc = cli_json(capsys, "backup", source)
    assert code == 0, doc
    # the same database as its URL: one source id, one history
    code, again = cli_json(capsys, "backup", hard_db.url)
    assert code == 0 and again["backups"][0]["source_id"] == doc["backups"][0]["source_id"]
    target = f"{hard_db.name}_ci"
    try:
        code, out = cli_json(
            capsys, "restore", "latest", f"host={pg15.host} port={pg15.port} user=postgres dbname='{target}'"
        )
        assert code == 0, out
        assert out["rows"] == sum(doc["backups"][0]["manifest"]["row_counts"].values())
    finally:
        pg15.drop_db(target)
    code, _out, err = cli(capsys, "backup", "host=x port=notaport dbname=y")
    assert code == 2 and "bad port" in err


def test_restore_names_its_target_with_d_h_p_u_or_the_pg_environment(
    pgdb: PgDb, pg15: Cluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pg15.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 9) g", db=pgdb.name)
    assert cli_json(capsys, "backup", pgdb.url)[0] == 0
    flags, envs = f"{pgdb.name}_flags", f"{pgdb.name}_env"
    try:
        code, doc = cli_json(
            capsys, "restore", "latest", "-h", pg15.host, "-p", str(pg15.port), "-U", "postgres", "-d", flags
        )
        assert code == 0 and doc["rows"] == 9, doc
        assert doc["target"].endswith(f"/{flags}")
        for key, value in pg15.env().items():
            if key.startswith("PG"):
                monkeypatch.setenv(key, value)
        monkeypatch.setenv("PGDATABASE", envs)
        code, doc = cli_json(capsys, "restore", "latest")
        assert code == 0 and doc["rows"] == 9, doc
        assert pg15.psql("SELECT count(*) FROM t", db=envs) == "9"
        code, _out, err = cli(capsys, "restore", "latest", pgdb.url, "-d", "other")
        assert code == 2 and "named twice" in err
    finally:
        pg15.drop_db(flags)
        pg15.drop_db(envs)
    monkeypatch.delenv("PGDATABASE")
    code, _out, err = cli(capsys, "restore", "latest")
    assert code == 2 and "no target named" in err


def test_backup_parallel_sources_and_the_old_jobs_spelling(
    pgdb: PgDb, pg15: Cluster, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "a.db").write_bytes(b"")
    import sqlite3

    with sqlite3.connect(tmp_path / "a.db") as conn:
        conn.execute("CREATE TABLE x (y)")
    conn.close()
    code, _out, err = cli(capsys, "backup", pgdb.url, "a.db", "--parallel-sources", "2")
    assert code == 0 and "note" not in err, err
    code, _out, err = cli(capsys, "backup", pgdb.url, "a.db", "--jobs", "2")  # what crontabs have: still works
    assert code == 0 and "--jobs is now --parallel-sources" in err, err
    assert _sets(capsys) == 4
    code, _out, err = cli(capsys, "backup", "a.db", "--parallel-sources", "0")
    assert code == 2 and "--parallel-sources must be at least 1" in err


def test_backup_takes_host_in_its_long_form(pgdb: PgDb, pg15: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = cli_json(
        capsys, "backup", "--host", pg15.host, "--port", str(pg15.port), "--username", "postgres", "--dbname", pgdb.name
    )
    assert code == 0 and doc["backups"][0]["manifest"]["database"] == pgdb.name, doc


def test_help_is_help_on_a_connecting_command(capsys: pytest.CaptureFixture[str]) -> None:
    for command in sorted(CONNECTING):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        assert "-h HOST" in capsys.readouterr().out
