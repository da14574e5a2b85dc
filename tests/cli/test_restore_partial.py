"""`restore --table/--schema`: part of a backup, from plain dumps (filtered through the one lexer) and custom
archives (pg_restore with a TOC list), into a new database or, with --into-existing, into one that exists (one
transaction that only creates); row counts checked for the restored tables; on real PostgreSQL 15 and 17."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import cli, cli_json
from pg import PASSWORD, Cluster, unique_db_name

SHOP = """
CREATE SCHEMA audit;
CREATE TABLE public.users (id serial PRIMARY KEY, email text UNIQUE);
CREATE INDEX users_email_lower ON public.users (lower(email));
CREATE TABLE public.orders (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id int REFERENCES public.users);
CREATE TABLE public."Odd Name" (x int);
CREATE TABLE public.log (line text);
COMMENT ON TABLE public.users IS 'people';
CREATE TABLE audit.log (id int, user_id int REFERENCES public.users (id));
CREATE VIEW public.v AS SELECT * FROM public.users;
INSERT INTO public.users (email) SELECT 'u' || g FROM generate_series(1, 30) g;
INSERT INTO public.orders (user_id) SELECT g % 30 + 1 FROM generate_series(1, 40) g;
INSERT INTO audit.log SELECT g, 1 FROM generate_series(1, 60) g;
INSERT INTO public."Odd Name" VALUES (1), (2);
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "DBKEEPER_STORE", "DBKEEPER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    return tmp_path


@pytest.fixture(params=[("pg15", "plain"), ("pg17", "plain"), ("pg15", "custom"), ("pg17", "custom")], ids=str)
def backed_up(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[tuple[Cluster, str, list[str]]]:
    """A backup of the shop on the cluster, in the format; and the databases a test makes, dropped after."""
    fixture, fmt = request.param
    cluster: Cluster = request.getfixturevalue(fixture)
    monkeypatch.setenv("PATH", f"{cluster.bindir}:{os.environ['PATH']}")
    name = unique_db_name("shop")
    cluster.create_db(name)
    made = [name]
    try:
        cluster.psql(SHOP, db=name)
        code, doc = cli_json(capsys, "backup", cluster.url(name), "--format", fmt)
        assert code == 0, doc
        yield cluster, name, made
    finally:
        for db in made:
            cluster.drop_db(db)


def _new(cluster: Cluster, made: list[str], hint: str) -> str:
    name = unique_db_name(hint)
    made.append(name)
    return name


def _tables(cluster: Cluster, db: str) -> list[str]:
    return cluster.psql(
        "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname IN ('public', 'audit') ORDER BY 1",
        db=db,
    ).splitlines()


def test_one_table_comes_with_its_indexes_constraints_and_sequence(
    backed_up: tuple[Cluster, str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, _db, made = backed_up
    target = _new(cluster, made, "users")
    code, doc = cli_json(capsys, "restore", "latest", cluster.url(target), "--table", "users")
    assert code == 0, doc
    assert doc["tables"] == 1 and doc["rows"] == 30
    assert _tables(cluster, target) == ["public.users"]
    indexes = cluster.psql("SELECT indexname FROM pg_indexes WHERE tablename = 'users' ORDER BY 1", db=target)
    assert indexes.split() == ["users_email_key", "users_email_lower", "users_pkey"]
    assert cluster.psql("SELECT nextval('users_id_seq')", db=target) == "31"  # the sequence and its value
    assert cluster.psql("SELECT obj_description('public.users'::regclass)", db=target) == "people"


def test_two_tables_keep_the_foreign_key_between_them_and_one_alone_does_not(
    backed_up: tuple[Cluster, str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, _db, made = backed_up
    both = _new(cluster, made, "both")
    code, doc = cli_json(capsys, "restore", "latest", cluster.url(both), "-t", "public.orders", "-t", "public.users")
    assert code == 0 and doc["rows"] == 70, doc
    fks = "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
    assert cluster.psql(fks, db=both) == "1"
    alone = _new(cluster, made, "alone")
    code, doc = cli_json(capsys, "restore", "latest", cluster.url(alone), "--table", "orders")
    assert code == 0 and doc["rows"] == 40, doc
    assert _tables(cluster, alone) == ["public.orders"] and cluster.psql(fks, db=alone) == "0"
    odd = _new(cluster, made, "odd")
    code, doc = cli_json(capsys, "restore", "latest", cluster.url(odd), "--table", 'public."Odd Name"')
    assert code == 0 and doc["rows"] == 2, doc


def test_a_schema_comes_whole_without_foreign_keys_leaving_it(
    backed_up: tuple[Cluster, str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, _db, made = backed_up
    target = _new(cluster, made, "audit")
    code, doc = cli_json(capsys, "restore", "latest", cluster.url(target), "--schema", "audit")
    assert code == 0 and doc["rows"] == 60, doc
    assert _tables(cluster, target) == ["audit.log"]


def test_what_the_backup_does_not_hold_is_refused_before_anything_is_created(
    backed_up: tuple[Cluster, str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, _db, made = backed_up
    target = _new(cluster, made, "none")
    code, _out, err = cli(capsys, "restore", "latest", cluster.url(target), "--table", "public.nope")
    assert code == 2 and "holds no table public.nope" in err and "public.users" in err
    code, _out, err = cli(capsys, "restore", "latest", cluster.url(target), "--table", "log")
    assert code == 2 and "several schemas" in err and "audit.log" in err and "public.log" in err
    code, _out, err = cli(capsys, "restore", "latest", cluster.url(target), "--schema", "nope")
    assert code == 2 and "no table in schema nope" in err
    assert cluster.psql(f"SELECT count(*) FROM pg_database WHERE datname LIKE '{target}%'") == "0"


def test_into_an_existing_database_only_creates(
    backed_up: tuple[Cluster, str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, _db, made = backed_up
    live = _new(cluster, made, "live")
    cluster.create_db(live)
    cluster.psql("CREATE TABLE public.users (id int, email text); INSERT INTO users VALUES (1, 'kept')", db=live)
    cluster.psql("CREATE TABLE public.other (x int); INSERT INTO other VALUES (7)", db=live)

    code, _out, err = cli(capsys, "restore", "latest", cluster.url(live), "--table", "users", "--into-existing")
    assert code == 1 and "public" in err and "users" in err and "already exists" in err and "--drop-existing" in err
    assert cluster.psql("SELECT email FROM users", db=live) == "kept"

    code, doc = cli_json(capsys, "restore", "latest", cluster.url(live), "--table", "orders", "--into-existing")
    assert code == 0 and doc["rows"] == 40, doc
    assert cluster.psql("SELECT count(*) FROM orders", db=live) == "40"
    code, doc = cli_json(
        capsys, "restore", "latest", cluster.url(live), "-t", "users", "--into-existing", "--drop-existing"
    )
    assert code == 0 and doc["rows"] == 30, doc
    assert cluster.psql("SELECT count(*) FROM users", db=live) == "30"
    assert cluster.psql("SELECT x FROM other", db=live) == "7"  # everything else untouched
    assert _tables(cluster, live) == ["public.orders", "public.other", "public.users"]


def test_a_failure_into_an_existing_database_leaves_it_as_it_was(
    backed_up: tuple[Cluster, str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, _db, made = backed_up
    live = _new(cluster, made, "live")
    cluster.create_db(live)
    cluster.psql(
        "CREATE TABLE public.users (id int, email text); INSERT INTO users VALUES (1, 'kept');"
        " CREATE TABLE public.users_id_seq (x int)",  # the restored sequence's name is taken: CREATE fails
        db=live,
    )
    code, _out, err = cli(
        capsys, "restore", "latest", cluster.url(live), "-t", "users", "--into-existing", "--drop-existing"
    )
    assert code == 1 and "users_id_seq" in err, err
    assert cluster.psql("SELECT email FROM users", db=live) == "kept"  # the DROP was rolled back with the rest
    cluster.psql("CREATE VIEW public.v AS SELECT * FROM users; DROP TABLE users_id_seq", db=live)
    code, _out, err = cli(
        capsys, "restore", "latest", cluster.url(live), "-t", "users", "--into-existing", "--drop-existing"
    )
    assert code == 1 and "depend" in err, err  # no CASCADE: a view over the table is never dropped silently
    assert cluster.psql("SELECT email FROM v", db=live) == "kept"


def test_into_existing_needs_a_table_or_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = cli(capsys, "restore", "latest", "postgresql://a@127.0.0.1:1/x", "--into-existing")
    assert code == 2 and "--table or --schema" in err
