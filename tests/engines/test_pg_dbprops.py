"""A database's own properties (locale provider and ICU locale, owner, comment, privileges, settings) come back on
a restore to a new name, as they are kept on a --drop-existing restore: pg_dump without --create writes none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dbkeeper.engines.postgres.dbprops import DbProps, statements
from pg import PASSWORD, Cluster, PgDb

PROPS = (
    "SELECT d.datlocprovider, d.daticulocale, pg_get_userbyid(d.datdba), shobj_description(d.oid, 'pg_database'),"
    " d.datacl::text,"
    " (SELECT string_agg(coalesce(r.rolname, '*') || ':' || array_to_string(x.setconfig, ','), ';' ORDER BY 1)"
    "  FROM pg_db_role_setting x LEFT JOIN pg_roles r ON r.oid = x.setrole WHERE x.setdatabase = d.oid)"
    " FROM pg_database d WHERE d.datname = '{db}'"
)


def _props(cluster: Cluster, db: str) -> str:
    return cluster.psql(PROPS.format(db=db)).replace(db, "DB")


def test_an_icu_database_with_its_properties_comes_back_under_a_new_name(
    pg15: Cluster, pgdb: PgDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = f"{pgdb.name}_icu"
    owner, reader = f"own_{pgdb.name[-8:]}", f"rd_{pgdb.name[-8:]}"
    for role in (owner, reader):
        pg15.psql(f"DO $$ BEGIN CREATE ROLE {role}; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    pg15.psql(
        f"CREATE DATABASE {source} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'de-DE'"
        f" LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' OWNER {owner}"
    )
    target = f"{pgdb.name}_new"
    try:
        pg15.psql(
            f"COMMENT ON DATABASE {source} IS 'the shop''s data';"
            f"ALTER DATABASE {source} SET search_path TO shop, public;"
            f"ALTER DATABASE {source} SET work_mem TO '64MB';"
            f"ALTER ROLE {reader} IN DATABASE {source} SET statement_timeout TO '5s';"
            f"REVOKE ALL ON DATABASE {source} FROM PUBLIC;"
            f"GRANT CONNECT ON DATABASE {source} TO {reader};"
        )
        pg15.psql("CREATE TABLE w (v text); INSERT INTO w VALUES ('a'), ('B'), ('ä'), ('z')", db=source)
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        run = [sys.executable, "-m", "dbkeeper"]
        assert subprocess.run([*run, "backup", pg15.url(source)], env=env).returncode == 0
        done = subprocess.run([*run, "restore", "latest", pg15.url(target)], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert _props(pg15, target) == _props(pg15, source)
        assert pg15.psql(f"SELECT datlocprovider FROM pg_database WHERE datname = '{target}'") == "i"
        order = "SELECT string_agg(v, ',' ORDER BY v) FROM w"
        assert pg15.psql(order, db=target) == pg15.psql(order, db=source) == "a,ä,B,z"  # de-DE, not C
    finally:
        for db in (source, target):
            pg15.drop_db(db)


def test_statements_quote_what_a_manifest_holds() -> None:
    props = DbProps(
        owner='o"wner',
        comment="it's",
        acl='{=c/postgres,"we ird"=C*T/postgres,bad}',
        settings=(("", 'search_path=a, "b c"'), ("r", "work_mem=1MB")),
    )
    assert statements("d", props) == [
        'ALTER DATABASE "d" OWNER TO "o""wner"',
        "COMMENT ON DATABASE \"d\" IS 'it''s'",
        'REVOKE ALL ON DATABASE "d" FROM PUBLIC',
        'GRANT CONNECT ON DATABASE "d" TO PUBLIC',
        'GRANT CREATE, TEMPORARY ON DATABASE "d" TO "we ird" WITH GRANT OPTION',
        "ALTER DATABASE \"d\" SET \"search_path\" TO 'a', 'b c'",
        'ALTER ROLE "r" IN DATABASE "d" SET "work_mem" TO \'1MB\'',
    ]
    assert statements("d", props, with_roles=False) == [
        "COMMENT ON DATABASE \"d\" IS 'it''s'",
        "ALTER DATABASE \"d\" SET \"search_path\" TO 'a', 'b c'",
    ]
