"""Restore into real PostgreSQL servers: whole or not at all, never over an existing database unless asked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hard_cases import HARD_CASES_SQL
from helpers import cli, cli_json
from pg import Cluster, PgDb, unique_db_name
from pgutil import comparable_dump, databases


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg15: Cluster) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PGPASSWORD", pg15.env()["PGPASSWORD"])
    return tmp_path


def _seed(cluster: Cluster, db: str, rows: int = 100) -> None:
    cluster.psql(
        f"CREATE TABLE users (id int PRIMARY KEY, name text);"
        f"INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, {rows}) g;",
        db=db,
    )


def test_existing_target_needs_drop_existing_and_live_sessions_are_ended(
    pgdb: PgDb, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, name = pgdb
    _seed(cluster, name)
    assert cli(capsys, "backup", pgdb.url)[0] == 0
    target = f"{name}_live"
    cluster.create_db(target)
    cluster.psql("CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (42)", db=target)

    code, _, err = cli(capsys, "restore", "latest", cluster.url(target))
    assert code == 1 and "already exists" in err and "--drop-existing" in err
    assert cluster.psql("SELECT x FROM keep_me", db=target) == "42"

    # An application session stays connected to the target while it is replaced.
    app = subprocess.Popen(
        [cluster.tool("psql"), "-X", "-d", target, "-c", "SELECT pg_sleep(60)"],
        env=cluster.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        code, doc = cli_json(capsys, "restore", "latest", cluster.url(target), "--drop-existing")
        assert code == 0, doc
        assert doc["replaced"] and doc["rows"] == 100
    finally:
        app.wait(timeout=30)
    assert app.returncode != 0  # its session was ended
    assert cluster.psql("SELECT count(*) FROM users", db=target) == "100"
    assert cluster.psql("SELECT to_regclass('keep_me') IS NULL", db=target) == "t"
    assert not [d for d in databases(cluster) if "dbkeeper_" in d]
    cluster.drop_db(target)


def test_failed_restore_leaves_the_target_exactly_as_it_was(
    pgdb: PgDb, pg17: Cluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, name = pgdb
    cluster.psql("DO $$ BEGIN CREATE ROLE app_owner; EXCEPTION WHEN duplicate_object THEN NULL; END $$", db=name)
    _seed(cluster, name)
    cluster.psql("ALTER TABLE users OWNER TO app_owner", db=name)
    assert cli(capsys, "backup", pgdb.url)[0] == 0

    # pg17 has no role app_owner: the restore fails inside psql, the existing target must not change.
    monkeypatch.setenv("PGPASSWORD", pg17.env()["PGPASSWORD"])
    pg17.psql("DROP DATABASE IF EXISTS existing; CREATE DATABASE existing")
    pg17.psql("CREATE TABLE old (x int); INSERT INTO old VALUES (7)", db="existing")
    before = comparable_dump(pg17, "existing")
    code, _, err = cli(capsys, "restore", "latest", pg17.url("existing"), "--drop-existing")
    assert code == 1
    assert 'role "app_owner" does not exist' in err and "--no-owner" in err
    assert comparable_dump(pg17, "existing") == before
    assert not [d for d in databases(pg17) if "dbkeeper_" in d]

    code, doc = cli_json(capsys, "restore", "latest", pg17.url("existing"), "--drop-existing", "--no-owner")
    assert code == 0 and doc["rows"] == 100
    assert pg17.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'users'", db="existing") == "postgres"


def test_source_encoding_is_kept(pg15: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    pg15.psql("DROP DATABASE IF EXISTS latin; DROP DATABASE IF EXISTS latin_copy")
    pg15.create_db("latin", encoding="LATIN1")
    pg15.psql("CREATE TABLE t (s text); INSERT INTO t VALUES ('café crème'), ('Ærø')", db="latin")
    code, doc = cli_json(capsys, "backup", pg15.url("latin"))
    assert code == 0 and doc["backups"][0]["manifest"]["server_encoding"] == "LATIN1"
    code, _ = cli_json(capsys, "restore", "latest", pg15.url("latin_copy"), "--database", "latin")
    assert code == 0
    assert pg15.psql("SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'latin_copy'") == "LATIN1"
    assert pg15.psql("SELECT string_agg(s, ',' ORDER BY s) FROM t", db="latin_copy") == "café crème,Ærø"


def test_disable_triggers_loads_with_replication_role(pgdb: PgDb, capsys: pytest.CaptureFixture[str]) -> None:
    cluster, name = pgdb
    _seed(cluster, name, 10)
    assert cli(capsys, "backup", pgdb.url)[0] == 0
    target = f"{name}_nt"
    code, doc = cli_json(capsys, "restore", "latest", cluster.url(target), "--disable-triggers")
    assert code == 0 and doc["rows"] == 10
    cluster.drop_db(target)


def test_pg15_backup_restores_into_pg17(
    pgdb: PgDb, pg17: Cluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, name = pgdb
    _seed(cluster, name, 500)
    assert cli(capsys, "backup", pgdb.url)[0] == 0
    monkeypatch.setenv("PGPASSWORD", pg17.env()["PGPASSWORD"])
    pg17.psql("DROP DATABASE IF EXISTS upgraded")
    code, doc = cli_json(capsys, "restore", "latest", pg17.url("upgraded"), "--pg-bin", str(pg17.bindir))
    assert code == 0 and doc["rows"] == 500


def test_sigterm_mid_restore_cleans_up(pgdb: PgDb, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import os
    import signal
    import sys
    import time

    cluster, name = pgdb
    cluster.psql(
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1500000) g;"
        "CREATE INDEX ON big (v)",
        db=name,
    )
    assert cli(capsys, "backup", pgdb.url)[0] == 0
    target = f"{name}_term"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbkeeper", "restore", "latest", cluster.url(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not [d for d in databases(cluster) if "dbkeeper_tmp" in d]:
        time.sleep(0.05)
    time.sleep(0.5)  # mid-load
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert b"terminated; nothing partial was kept" in err and b"Traceback" not in err
    assert not [d for d in databases(cluster) if "dbkeeper_" in d or d == target]


def test_drop_existing_keeps_the_databases_owner_and_settings(pgdb: PgDb, capsys: pytest.CaptureFixture[str]) -> None:
    cluster, name = pgdb
    _seed(cluster, name, 10)
    assert cli(capsys, "backup", pgdb.url)[0] == 0
    target = f"{name}_props"
    cluster.psql("DO $$ BEGIN CREATE ROLE props_owner; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    cluster.create_db(target)
    cluster.psql(
        f"ALTER DATABASE {target} OWNER TO props_owner;"
        f'ALTER DATABASE {target} SET search_path TO "$user", public, "Odd Schema";'
        f"ALTER DATABASE {target} SET work_mem = '64MB';"
        f"ALTER ROLE props_owner IN DATABASE {target} SET statement_timeout = '5s';"
    )
    settings = (
        "SELECT coalesce(r.rolname, '-') || ':' || array_to_string(s.setconfig, '|') FROM pg_db_role_setting s"
        " JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole"
        f" WHERE d.datname = '{target}' ORDER BY 1"
    )
    before = cluster.psql(settings)
    code, _ = cli_json(capsys, "restore", "latest", cluster.url(target), "--drop-existing")
    assert code == 0
    owner = cluster.psql(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{target}'")
    assert owner == "props_owner"
    assert cluster.psql(settings) == before
    assert "work_mem=64MB" in before and '"Odd Schema"' in before
    cluster.drop_db(target)


@pytest.mark.parametrize(("cores", "jobs"), [(1, 1), (None, 1), (2, 2), (64, 2)])
def test_restores_load_over_two_sessions_wherever_there_is_a_second_core(
    monkeypatch: pytest.MonkeyPatch, cores: int | None, jobs: int
) -> None:
    from dbkeeper import restore

    monkeypatch.setattr(restore.os, "cpu_count", lambda: cores)
    assert restore.default_jobs() == jobs


def _forge(store: Path, insert: bytes) -> str:
    """Rewrite the store's only backup as whoever can write the store could: ``insert`` before the trailer, and
    the size, the sha256 and the sidecar recomputed (they live in the store too)."""
    import gzip
    import hashlib
    import json

    [data] = [p for p in store.rglob("*.sql.gz")]
    dump = gzip.decompress(data.read_bytes())
    at = dump.rindex(b"--\n-- PostgreSQL database dump complete")
    forged = gzip.compress(dump[:at] + insert + dump[at:])
    data.write_bytes(forged)
    digest = hashlib.sha256(forged).hexdigest()
    Path(f"{data}.sha256").write_text(f"{digest}  {data.name}\n")
    manifest = Path(f"{data}.json")
    doc = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**doc, "sha256": digest, "size_bytes": len(forged)}))
    return str(data)


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize(
    "insert,named",
    [
        (b"CREATE ROLE evil_{tag} SUPERUSER;\n", "creates or changes a role"),
        (b"COPY (SELECT 1) TO PROGRAM 'touch {owned}';\n", "copies to or from anything but the dump"),
        (b"\\! touch {owned}\n", "a psql meta-command"),
    ],
    ids=["create-role", "copy-to-program", "shell"],
)
def test_a_forged_backup_runs_nothing_and_is_refused(
    pgdb: PgDb, tmp_path: Path, capsys: pytest.CaptureFixture[str], insert: bytes, named: str, jobs: str
) -> None:
    cluster, name = pgdb
    _seed(cluster, name)
    assert cli(capsys, "backup", pgdb.url)[0] == 0
    owned, tag = tmp_path / "owned", name[-8:]
    path = _forge(tmp_path / "backups", insert.replace(b"{owned}", str(owned).encode()).replace(b"{tag}", tag.encode()))
    code, out, _ = cli(capsys, "verify", path)
    assert code == 3 and "FAILED  content" in out and named in out
    target = f"{name}_forged"
    cluster.create_db(target)
    cluster.psql("CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (42)", db=target)
    try:
        code, _, err = cli(capsys, "restore", path, cluster.url(target), "--drop-existing", "--jobs", jobs)
        assert code == 3 and "not only data" in err and named in err
        assert not owned.exists()
        assert cluster.psql(f"SELECT count(*) FROM pg_roles WHERE rolname = 'evil_{tag}'") == "0"
        assert cluster.psql("SELECT x FROM keep_me", db=target) == "42"  # the target is as it was
        assert not [d for d in databases(cluster) if "dbkeeper_" in d]
    finally:
        cluster.drop_db(target)


def test_a_comment_holding_a_copy_line_keeps_its_counts_and_restores(
    pgdb: PgDb, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, name = pgdb
    _seed(cluster, name)
    cluster.psql(
        "COMMENT ON TABLE users IS E'sneaky\\nCOPY public.users (id, name) FROM stdin;\\n1\\tx\\n\\\\.\\n'", db=name
    )
    code, doc = cli_json(capsys, "backup", pgdb.url)
    assert code == 0 and doc["backups"][0]["manifest"]["row_counts"] == {"public.users": 100}
    assert cli(capsys, "verify", "latest")[0] == 0
    code, result = cli_json(capsys, "restore", "latest", cluster.url(f"{name}_c"))
    assert code == 0 and result["rows"] == 100
    cluster.drop_db(f"{name}_c")


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_audit_event_trigger_fires_on_nothing_the_restore_does(
    pgdb: PgDb, capsys: pytest.CaptureFixture[str], jobs: str
) -> None:
    cluster, name = pgdb
    _seed(cluster, name)
    cluster.psql(
        "CREATE TABLE audit (id serial PRIMARY KEY, tag text);"
        "CREATE TABLE more (id int PRIMARY KEY); INSERT INTO more SELECT generate_series(1, 50);"
        "CREATE INDEX ON users (name);"
        "CREATE FUNCTION log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS"
        " $$ BEGIN INSERT INTO public.audit(tag) VALUES (tg_tag); END $$;"
        "CREATE EVENT TRIGGER audit_ddl ON ddl_command_end EXECUTE FUNCTION log_ddl();"
        "CREATE TABLE later (id int);",
        db=name,
    )
    assert cli(capsys, "backup", pgdb.url)[0] == 0
    for extra in ([], ["--drop-existing"]):
        code, doc = cli_json(capsys, "restore", "latest", cluster.url(f"{name}_r"), "--jobs", jobs, *extra)
        assert code == 0, doc
        assert cluster.psql("SELECT count(*) FROM audit", db=f"{name}_r") == "1"  # the source's one row
    cluster.drop_db(f"{name}_r")


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_latin1_database_with_non_ascii_names_round_trips(
    pg15: Cluster, pgdb: PgDb, capsys: pytest.CaptureFixture[str], jobs: str
) -> None:
    source, target = f"{pgdb.name}_l1", f"{pgdb.name}_l1r"
    pg15.psql(f"CREATE DATABASE {source} TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'")
    try:
        pg15.psql(
            'CREATE TABLE "café" (id int PRIMARY KEY, note text);'
            """INSERT INTO "café" SELECT g, 'crème ' || g FROM generate_series(1, 30) g;"""
            'CREATE TABLE "naïve" (id int); INSERT INTO "naïve" SELECT generate_series(1, 7);',
            db=source,
        )
        code, doc = cli_json(capsys, "backup", pg15.url(source))
        assert code == 0, doc
        assert sorted(doc["backups"][0]["manifest"]["row_counts"].values()) == [7, 30]
        assert cli(capsys, "verify", "latest", "--database", source)[0] == 0
        code, result = cli_json(capsys, "restore", "latest", pg15.url(target), "--database", source, "--jobs", jobs)
        assert code == 0, result
        assert result["rows"] == 37
        assert pg15.psql('SELECT note FROM "café" WHERE id = 3', db=target) == "crème 3"
        encoding = f"SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = '{target}'"
        assert pg15.psql(encoding) == "LATIN1"
    finally:
        for db in (source, target):
            pg15.drop_db(db)


def test_a_comment_holding_a_toc_line_restores_over_two_sessions(
    pgdb: PgDb, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, name = pgdb
    _seed(cluster, name)
    cluster.psql("CREATE TABLE other (id int); INSERT INTO other SELECT generate_series(1, 40);", db=name)
    cluster.psql(
        "COMMENT ON TABLE users IS E'x\\n-- Data for Name: other; Type: TABLE DATA; Schema: public; Owner: x\\n'",
        db=name,
    )
    assert cli(capsys, "backup", pgdb.url)[0] == 0
    code, result = cli_json(capsys, "restore", "latest", cluster.url(f"{name}_t"), "--jobs", "2")
    assert code == 0 and result["rows"] == 140, result
    cluster.drop_db(f"{name}_t")


def test_a_table_without_columns_and_one_with_a_newline_in_its_name_are_counted(
    pgdb: PgDb, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, name = pgdb
    cluster.psql(
        "CREATE TABLE zero (); INSERT INTO zero DEFAULT VALUES; INSERT INTO zero DEFAULT VALUES;"
        'CREATE TABLE "new\nline" (id int); INSERT INTO "new\nline" VALUES (1), (2), (3);',
        db=name,
    )
    code, doc = cli_json(capsys, "backup", pgdb.url)
    assert code == 0, doc
    assert doc["backups"][0]["manifest"]["row_counts"] == {"public.zero": 2, 'public."new\nline"': 3}
    assert cli(capsys, "verify", "latest")[0] == 0
    for jobs in ("1", "2"):
        code, result = cli_json(capsys, "restore", "latest", cluster.url(f"{name}_z{jobs}"), "--jobs", jobs)
        assert code == 0 and result["rows"] == 5, result
        cluster.drop_db(f"{name}_z{jobs}")


# -- exactness: a real-world schema comes back as it was --------------------------------------------------------

_TABLE_SUMS = """
SELECT format('%I.%I', n.nspname, c.relname) || ' ' || CASE WHEN NOT c.relispopulated THEN 'not populated' ELSE
       (xpath('/row/h/text()', query_to_xml(
           format('SELECT count(*) || '' '' || md5(coalesce(string_agg(t::text, E''\\n'' ORDER BY t::text), ''''))'
                  ' AS h FROM ONLY %I.%I t', n.nspname, c.relname), false, true, '')))[1]::text END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY 1
"""
_LARGE_OBJECTS = """
SELECT m.oid, m.lomowner::regrole, coalesce(m.lomacl::text, '-'), coalesce(obj_description(m.oid, 'pg_largeobject'),
       '-'), md5(lo_get(m.oid)), length(lo_get(m.oid))
FROM pg_largeobject_metadata m ORDER BY 1
"""


def _database(cluster: Cluster, db: str) -> str:
    """What is the database's own, not its objects': encoding, locale, owner, ACL, comment, settings."""
    return cluster.psql(
        "SELECT pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, d.datlocprovider, d.datdba::regrole,"
        " d.datacl, shobj_description(d.oid, 'pg_database'), d.datallowconn, d.datconnlimit,"
        " (SELECT array_agg(s.setrole::regrole || ':' || array_to_string(s.setconfig, ',') ORDER BY s.setrole)"
        "  FROM pg_db_role_setting s WHERE s.setdatabase = d.oid)"
        f" FROM pg_database d WHERE d.datname = '{db}'"
    )


def _schema(cluster: Cluster, db: str) -> list[str]:
    """``pg_dump --create --schema-only`` of ``db``, its name replaced: the catalog as pg_dump sees it."""
    out = subprocess.run(
        [cluster.tool("pg_dump"), "--create", "--schema-only", "-d", db],
        env=cluster.env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    skip = ("\\restrict ", "\\unrestrict ", "-- Dumped from", "-- Dumped by")
    return [line.replace(db, "<db>") for line in out.splitlines() if not line.startswith(skip)]


@pytest.mark.parametrize("major", [15, 17])
def test_a_real_world_schema_comes_back_exactly(
    major: int, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    """tests/data/hard_cases.sql (rules, large objects with privileges and comments, a publication, policies,
    generated and identity columns, triggers, column and default privileges, function bodies holding COPY and
    \\connect text, BEGIN ATOMIC, non-ASCII names), backed up and restored to a new name, compared with the
    source: the catalog (pg_dump --create --schema-only), every table's rows, every large object, the database's
    own properties."""
    cluster: Cluster = request.getfixturevalue(f"pg{major}")
    name = unique_db_name(f"real world {major}")
    target = f"{name}_back"
    cluster.create_db(name)
    try:
        cluster.psql_file(HARD_CASES_SQL, db=name)
        cluster.psql(f"COMMENT ON DATABASE {name} IS 'real world ünï'; ALTER DATABASE {name} SET work_mem = '8MB'")
        pg_bin = ("--pg-bin", str(cluster.bindir))
        code, doc = cli_json(capsys, "backup", cluster.url(name), *pg_bin)
        assert code == 0, doc
        code, doc = cli_json(capsys, "restore", "latest", cluster.url(target), "--database", name, *pg_bin)
        assert code == 0, doc
        assert _schema(cluster, target) == _schema(cluster, name)
        assert cluster.psql(_TABLE_SUMS, db=target) == cluster.psql(_TABLE_SUMS, db=name)
        objects = cluster.psql(_LARGE_OBJECTS, db=name)
        assert cluster.psql(_LARGE_OBJECTS, db=target) == objects and len(objects.splitlines()) == 2
        assert _database(cluster, target) == _database(cluster, name)
        assert comparable_dump(cluster, target) == comparable_dump(cluster, name)
        assert not Path("/tmp/dbkeeper-pwned").exists()
    finally:
        cluster.drop_db(target)
        cluster.drop_db(name)


def test_a_forged_custom_archive_runs_nothing_and_is_refused(
    pgdb: PgDb, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A custom archive is spooled whole before pg_restore runs it: the verdict on what pg_restore would run (its
    text, read by the same checker) comes before pg_restore gets the file. Forged as whoever can write the store
    would: a TOC entry's SQL replaced by a statement of the same length, size, sha256 and sidecar recomputed."""
    import hashlib
    import json

    cluster, name = pgdb
    _seed(cluster, name)
    tag = name[-8:]
    cluster.psql(f"COMMENT ON TABLE users IS '{'A' * 60}'", db=name)
    assert cli(capsys, "backup", pgdb.url, "--format", "custom", "--compress", "none")[0] == 0
    [data] = [p for p in (tmp_path / "backups").rglob("*.dump")]
    archive = data.read_bytes()
    old = f"COMMENT ON TABLE public.users IS '{'A' * 60}';".encode()
    new = f"CREATE ROLE evil_{tag} SUPERUSER; COMMENT ON TABLE public.users IS 'x';".encode()
    assert archive.count(old) == 1 and len(new) <= len(old)
    forged = archive.replace(old, new.ljust(len(old)))
    data.write_bytes(forged)
    digest = hashlib.sha256(forged).hexdigest()
    Path(f"{data}.sha256").write_text(f"{digest}  {data.name}\n")
    manifest = Path(f"{data}.json")
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "sha256": digest, "size_bytes": len(forged)}))

    code, out, _ = cli(capsys, "verify", str(data))
    assert code == 3 and "creates or changes a role" in out
    try:
        code, _, err = cli(capsys, "restore", str(data), cluster.url(f"{name}_forged"))
        assert code == 3 and "not only data" in err and "creates or changes a role" in err
        assert cluster.psql(f"SELECT count(*) FROM pg_roles WHERE rolname = 'evil_{tag}'") == "0"
        assert not [d for d in databases(cluster) if f"{name}_forged" in d or "dbkeeper_" in d]
    finally:
        cluster.psql(f"DROP ROLE IF EXISTS evil_{tag}")
