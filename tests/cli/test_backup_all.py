"""Whole servers: `backup --all` (every connectable non-template database, --exclude-db, the server's roles and
tablespaces kept with each run) and `restore --globals` (missing roles created, nothing existing changed or
dropped, surprises refused), on fresh PostgreSQL 15 and 17 clusters of their own, so the set of databases is
exactly what each test made."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import _pg15_bindir, _pg17_bindir, _start
from dbkeeper.engines import source_key
from dbkeeper.repo.sources import source_id
from helpers import cli, cli_json
from pg import HOST, PASSWORD, Cluster


@pytest.fixture(scope="module")
def fresh15() -> Iterator[Cluster]:
    yield from _start(_pg15_bindir(), 15)


@pytest.fixture(scope="module")
def fresh17() -> Iterator[Cluster]:
    yield from _start(_pg17_bindir(), 17)


@pytest.fixture(params=["fresh15", "fresh17"])
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    cluster: Cluster = request.getfixturevalue(request.param)
    monkeypatch.setenv("PATH", f"{cluster.bindir}:{os.environ['PATH']}")
    return cluster


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "DBKEEPER_STORE", "DBKEEPER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    return tmp_path


@pytest.fixture
def databases(server: Cluster) -> Iterator[Cluster]:
    """shop, crm and test_scratch (connectable), a template and a database that takes no connections, and what a
    killed restore left (a temporary database): only the first two and postgres are a server's databases."""
    made = ["shop", "crm", "test_scratch", "tpl", "closed", "shop_dbkeeper_tmp_0badf00d"]
    for name in made:
        server.create_db(name)
    server.psql("CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 7) g", db="shop")
    server.psql("CREATE TABLE people AS SELECT g AS id FROM generate_series(1, 3) g", db="crm")
    server.psql("ALTER DATABASE tpl IS_TEMPLATE true; ALTER DATABASE closed ALLOW_CONNECTIONS false")
    try:
        yield server
    finally:
        server.psql("ALTER DATABASE tpl IS_TEMPLATE false; ALTER DATABASE closed ALLOW_CONNECTIONS true")
        for name in made:
            server.drop_db(name)


def _server_url(cluster: Cluster) -> str:
    return f"postgresql://postgres@{HOST}:{cluster.port}"


def test_backup_all_takes_every_connectable_non_template_database_and_the_globals(
    databases: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = databases
    code, doc = cli_json(capsys, "backup", "--all", _server_url(cluster), "--exclude-db", "test_*")
    assert code == 0, doc
    got = {b["manifest"]["database"]: b for b in doc["backups"]}
    assert set(got) == {"crm", "postgres", "shop", "postgres.globals"}
    assert got["shop"]["manifest"]["row_counts"] == {"public.items": 7}
    assert got["postgres.globals"]["manifest"]["dump_format"] == "globals"
    for db in ("crm", "shop", "postgres"):  # the id a URL of that database gets: one history either way
        assert got[db]["source_id"] == source_id(source_key(cluster.url(db)))

    code, doc = cli_json(capsys, "backup", cluster.url("shop"))
    assert code == 0 and doc["backups"][0]["source_id"] == got["shop"]["source_id"]
    code, listed = cli_json(capsys, "list", "--source", got["shop"]["source_id"])
    assert [b["database"] for b in listed["backups"]] == ["shop", "shop"]


def test_exclude_db_patterns_and_no_globals(databases: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    url = _server_url(databases)
    code, doc = cli_json(
        capsys, "backup", "--all", url, "--exclude-db", "test_*", "--exclude-db", "p?stgres", "--no-globals"
    )
    assert code == 0, doc
    assert sorted(b["manifest"]["database"] for b in doc["backups"]) == ["crm", "shop"]
    code, _out, err = cli(capsys, "backup", "--all", url, "--exclude-db", "*")
    assert code == 2 and "all excluded" in err
    code, _out, err = cli(capsys, "backup", url + "/shop", "--exclude-db", "x")
    assert code == 2 and "go with --all" in err


def test_a_server_entry_in_the_config(databases: Cluster, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "dbkeeper.toml").write_text(
        f'[[sources]]\nname = "db1"\nurl = "{_server_url(databases)}"\nall = true\n'
        'exclude_db = ["test_*", "postgres"]\nexclude_tables = ["public.people"]\n'
    )
    code, doc = cli_json(capsys, "backup", "db1")
    assert code == 0, doc
    got = {b["manifest"]["database"]: b["manifest"] for b in doc["backups"]}
    assert set(got) == {"crm", "shop", "postgres.globals"}
    assert got["crm"]["row_counts"] == {} and got["crm"]["selection"]["exclude_tables"] == ["public.people"]
    (tmp_path / "dbkeeper.toml").write_text(
        f'[[sources]]\nurl = "{_server_url(databases)}"\nall = true\nglobals = false\nexclude_db = ["test_*"]\n'
    )
    code, doc = cli_json(capsys, "backup")
    assert code == 0 and sorted(b["manifest"]["database"] for b in doc["backups"]) == ["crm", "postgres", "shop"]


def test_all_from_the_pg_environment(
    databases: Cluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in databases.env().items():
        if key.startswith("PG"):
            monkeypatch.setenv(key, value)
    code, doc = cli_json(capsys, "backup", "--all", "--exclude-db", "test_*", "--no-globals")
    assert code == 0, doc
    assert sorted(b["manifest"]["database"] for b in doc["backups"]) == ["crm", "postgres", "shop"]


ROLES = """
CREATE ROLE reader;
CREATE ROLE app LOGIN PASSWORD 'app-secret';
GRANT reader TO app;
ALTER ROLE app SET work_mem = '8MB';
CREATE ROLE nopw LOGIN;
CREATE ROLE boss SUPERUSER LOGIN PASSWORD 'boss-secret';
CREATE ROLE keeper CREATEDB;
"""
DROP_ROLES = "DROP ROLE IF EXISTS app, reader, nopw, boss, keeper"


def _roles(cluster: Cluster) -> set[str]:
    return set(cluster.psql("SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_'").split())


def test_restore_globals_creates_only_what_is_missing_and_refuses_surprises(
    fresh15: Cluster, fresh17: Cluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{fresh17.bindir}:{os.environ['PATH']}")
    source, target = fresh15, fresh17  # onto the next major, as a move to a new server goes
    source.psql(ROLES)
    target.psql("CREATE ROLE keeper NOCREATEDB CONNECTION LIMIT 3")  # already there: must stay as it is
    try:
        code, doc = cli_json(capsys, "backup", "--all", _server_url(source))
        assert code == 0, doc
        globals_set = next(b["name"] for b in doc["backups"] if b["manifest"]["dump_format"] == "globals")
        before = _roles(target)
        at = ("-h", HOST, "-p", str(target.port), "-U", "postgres")

        code, _out, err = cli(capsys, "restore", "--globals", globals_set, *at)
        assert code == 1 and "power over the server, e.g. boss" in err and "--allow-superuser" in err, err
        code, _out, err = cli(capsys, "restore", "--globals", globals_set, *at, "--allow-superuser")
        assert code == 1 and "without a password, e.g. nopw" in err and "--allow-no-password" in err, err
        assert _roles(target) == before  # nothing was created by the refused runs

        code, doc = cli_json(
            capsys, "restore", "--globals", globals_set, *at, "--allow-superuser", "--allow-no-password"
        )
        assert code == 0, doc
        assert doc["created_roles"] == ["app", "boss", "nopw", "reader"] and doc["existing_roles"] == [
            "keeper",
            "postgres",
        ]
        assert target.psql("SELECT rolcreatedb, rolconnlimit FROM pg_roles WHERE rolname = 'keeper'") == "f|3"
        assert target.psql("SELECT pg_has_role('app', 'reader', 'MEMBER')") == "t"
        assert "work_mem=8MB" in target.psql(
            "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
            " WHERE rolname = 'app'"
        )
        login = subprocess.run(
            [
                target.tool("psql"),
                "-X",
                "-At",
                "-h",
                HOST,
                "-p",
                str(target.port),
                "-U",
                "app",
                "-d",
                "postgres",
                "-c",
                "SELECT current_user",
            ],
            env={**target.env(), "PGUSER": "app", "PGPASSWORD": "app-secret"},
            capture_output=True,
            text=True,
        )
        assert login.stdout.strip() == "app", login.stderr  # the password hash came along

        code, doc = cli_json(capsys, "restore", "--globals", globals_set, *at)  # again: everything is there now
        assert code == 0 and doc["created_roles"] == [], doc

        code, _out, err = cli(capsys, "restore", globals_set, target.url("x"))
        assert code == 2 and "restore --globals" in err
        code, _out, err = cli(capsys, "restore", "--globals", globals_set, *at, "--drop-existing")
        assert code == 2 and "never drops" in err
    finally:
        source.psql(DROP_ROLES)
        target.psql(DROP_ROLES)


def test_restore_globals_refuses_a_backup_of_a_database(
    fresh15: Cluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{fresh15.bindir}:{os.environ['PATH']}")
    assert cli_json(capsys, "backup", fresh15.url("postgres"))[0] == 0
    code, _out, err = cli(capsys, "restore", "--globals", "latest", fresh15.url("postgres"))
    assert code == 2 and "not of a server's roles" in err


def test_a_failed_restore_of_globals_creates_none_of_the_roles(
    fresh15: Cluster, fresh17: Cluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL 17's pg_dumpall writes GRANT … WITH INHERIT TRUE, which 15 cannot read: the roles before that
    statement must not be left behind either (one transaction)."""
    monkeypatch.setenv("PATH", f"{fresh17.bindir}:{os.environ['PATH']}")
    fresh17.psql("CREATE ROLE reader; CREATE ROLE app LOGIN PASSWORD 'app-secret'; GRANT reader TO app")
    try:
        code, doc = cli_json(capsys, "backup", "--all", _server_url(fresh17), "--exclude-db", "*", "--exclude-db", "x")
        assert code == 2  # every database excluded is a usage error, before anything is written
        code, doc = cli_json(capsys, "backup", "--all", _server_url(fresh17))
        assert code == 0, doc
        globals_set = next(b["name"] for b in doc["backups"] if b["manifest"]["dump_format"] == "globals")
        before = _roles(fresh15)
        code, _out, err = cli(capsys, "restore", "--globals", globals_set, _server_url(fresh15))
        assert code == 1 and "creating the missing roles" in err and "INHERIT" in err, err
        assert _roles(fresh15) == before
    finally:
        fresh17.psql(DROP_ROLES)
        fresh15.psql(DROP_ROLES)
