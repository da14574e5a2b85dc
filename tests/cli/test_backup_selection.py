"""pg_dump's own controls through `dbkeeper backup`: -t/-T/-n/-N, --exclude-table-data and --pg-dump-option,
on real PostgreSQL 15 and 17; a partial backup says so in its manifest, in `list` and in `verify`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import cli, cli_json
from pg import PASSWORD, Cluster, unique_db_name

SHOP = """
CREATE SCHEMA audit;
CREATE TABLE public.users (id int PRIMARY KEY, email text UNIQUE);
CREATE TABLE public.orders (id int PRIMARY KEY, user_id int REFERENCES public.users (id));
CREATE TABLE public.events (id int);
CREATE TABLE audit.log (id int);
INSERT INTO public.users SELECT g, 'u' || g FROM generate_series(1, 30) g;
INSERT INTO public.orders SELECT g, g % 30 + 1 FROM generate_series(1, 40) g;
INSERT INTO public.events SELECT g FROM generate_series(1, 50) g;
INSERT INTO audit.log SELECT g FROM generate_series(1, 60) g;
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "DBKEEPER_STORE", "DBKEEPER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    return tmp_path


@pytest.fixture(params=["pg15", "pg17"])
def shop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    cluster: Cluster = request.getfixturevalue(request.param)
    monkeypatch.setenv("PATH", f"{cluster.bindir}:{os.environ['PATH']}")  # its own major's pg_dump
    name = unique_db_name("shop")
    cluster.create_db(name)
    cluster.psql(SHOP, db=name)
    yield cluster, name
    cluster.drop_db(name)


def _manifest(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:  # type: ignore[type-arg]
    code, doc = cli_json(capsys, "backup", *argv)
    assert code == 0, doc
    return doc["backups"][0]["manifest"]  # type: ignore[no-any-return]


def test_table_and_schema_selection_is_what_the_backup_holds_and_records(
    shop: tuple[Cluster, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, db = shop
    url = cluster.url(db)
    doc = _manifest(capsys, url, "-t", "public.users", "--table", "public.orders")
    assert doc["row_counts"] == {"public.users": 30, "public.orders": 40}
    assert doc["selection"]["tables"] == ["public.users", "public.orders"]

    doc = _manifest(capsys, url, "-N", "audit", "-T", "public.events")
    assert doc["row_counts"] == {"public.users": 30, "public.orders": 40}
    assert doc["selection"]["exclude_schemas"] == ["audit"] and doc["selection"]["exclude_tables"] == ["public.events"]

    doc = _manifest(capsys, url, "-n", "audit")
    assert doc["row_counts"] == {"audit.log": 60}

    doc = _manifest(capsys, url, "--exclude-table-data", "public.events", "--pg-dump-option=--no-comments")
    assert "public.events" not in doc["row_counts"] and doc["row_counts"]["audit.log"] == 60  # no COPY block
    assert doc["selection"]["pg_dump_options"] == ["--no-comments"]

    whole = _manifest(capsys, url)
    assert whole["selection"] is None and len(whole["row_counts"]) == 4


def test_a_partial_backup_is_marked_in_list_and_verify(
    shop: tuple[Cluster, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, db = shop
    code, out, err = cli(capsys, "backup", cluster.url(db), "-t", "public.users")
    assert code == 0, err
    assert "partial: -t public.users" in out
    code, out, _ = cli(capsys, "list")
    assert code == 0 and "partial: -t public.users" in out
    code, doc = cli_json(capsys, "list")
    assert doc["backups"][0]["partial"] is True and doc["backups"][0]["selection"]["tables"] == ["public.users"]
    code, out, _ = cli(capsys, "verify", "latest")
    assert code == 0 and "partial backup: -t public.users" in out


def test_a_table_pattern_that_matches_nothing_fails_instead_of_an_empty_backup(
    shop: tuple[Cluster, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cluster, db = shop
    code, _out, err = cli(capsys, "backup", cluster.url(db), "-t", "public.no_such_table")
    assert code == 1 and "no matching tables" in err
    assert not list((tmp_path / "backups").rglob("*.json")) if (tmp_path / "backups").exists() else True


@pytest.mark.parametrize(
    ("option", "named", "instead"),
    [
        ("--file=/tmp/x.sql", "--file", "--store"),
        ("-f", "-f", "--store"),
        ("--host=evil", "--host", "-h/-p/-U/-d"),
        ("--dbname=postgres", "--dbname", "-h/-p/-U/-d"),
        ("--format=directory", "--format", "--format plain|custom"),
        ("--clean", "--clean", "--drop-existing"),
        ("--create", "--create", "restore creates the database"),
        ("--inserts", "--inserts", "COPY"),
        ("--jobs=4", "--jobs", "--parallel-sources"),
        ("-t", "-t", "backup --table"),
        ("--role=admin", "--role", "switches roles"),
        ("--schema-only", "--schema-only", "schema and the data"),
        ("--no-such-option", "--no-such-option", "allowed:"),
        ("--lock-wait-timeout", "--lock-wait-timeout", "=VALUE"),
        ("plain", "'plain'", "one option a time"),
    ],
)
def test_pg_dump_options_that_change_what_dbkeeper_relies_on_are_refused_by_name(
    option: str, named: str, instead: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _out, err = cli(capsys, "backup", "postgresql://nobody@127.0.0.1:1/x", f"--pg-dump-option={option}")
    assert code == 2, err
    first, hint = err.splitlines()[0], err.splitlines()[1]
    assert named in first and instead in hint, err
    assert not (tmp_path / "backups").exists()  # refused before anything connected or was written


def test_the_config_takes_the_selection_per_source(
    shop: tuple[Cluster, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cluster, db = shop
    (tmp_path / "dbkeeper.toml").write_text(
        f'[[sources]]\nname = "shop"\nurl = "{cluster.url(db)}"\nexclude_schemas = ["audit"]\n'
        'exclude_table_data = "public.events"\npg_dump_options = ["--no-comments", "--lock-wait-timeout=30s"]\n'
    )
    doc = _manifest(capsys)
    assert doc["source_id"] == "shop"
    assert doc["row_counts"] == {"public.users": 30, "public.orders": 40}
    assert doc["selection"]["pg_dump_options"] == ["--no-comments", "--lock-wait-timeout=30s"]


def test_a_refused_option_in_the_config_names_the_file_and_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "dbkeeper.toml").write_text(
        '[[sources]]\nname = "shop"\nurl = "postgresql://a@b/c"\npg_dump_options = ["--clean"]\n'
    )
    code, _out, err = cli(capsys, "backup")
    assert code == 2 and "dbkeeper.toml: sources[0].pg_dump_options --clean is refused" in err, err


def test_a_manifest_with_a_malformed_selection_is_broken_not_trusted(
    shop: tuple[Cluster, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cluster, db = shop
    _manifest(capsys, cluster.url(db), "-t", "public.users")
    (path,) = (tmp_path / "backups").rglob("*.json")
    doc = json.loads(path.read_bytes())
    doc["selection"] = {"tables": "public.users"}
    path.write_text(json.dumps(doc))
    _code, out, _ = cli(capsys, "list")
    assert "BROKEN" in out and "selection" in out
