"""The harness itself: both servers start, and the hard-cases data set survives stock pg_dump and psql."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from hard_cases import HARD_CASES_ROW_COUNTS, HARD_CASES_SQL, row_counts
from pg import Cluster, ClusterError, PgDb, unique_db_name

MAJORS = [15, 17]


def cluster_for(request: pytest.FixtureRequest, major: int) -> Cluster:
    cluster: Cluster = request.getfixturevalue(f"pg{major}")
    return cluster


def pg_dump(cluster: Cluster, db: str) -> str:
    result = subprocess.run(
        [cluster.tool("pg_dump"), "--no-password", "-d", cluster.url(db)],
        env=cluster.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def copy_rows(dump: str) -> dict[str, int]:
    """Rows per COPY block of a plain dump: one data line per row, up to the line holding only \\."""
    counts: dict[str, int] = {}
    table = None
    for line in dump.splitlines():
        if table is None:
            match = re.fullmatch(r"COPY (.+) \(.*\) FROM stdin;", line)
            if match:
                table, counts[match.group(1)] = match.group(1), 0
        elif line == "\\.":
            table = None
        else:
            counts[table] += 1
    return counts


def comparable(dump: str) -> list[str]:
    """A dump without what differs between runs: the random \\restrict key and the version comments."""
    return [
        line
        for line in dump.splitlines()
        if not line.startswith(("\\restrict ", "\\unrestrict ", "-- Dumped from", "-- Dumped by"))
    ]


@pytest.mark.parametrize("major", MAJORS)
def test_cluster_starts_and_reports_its_version(request: pytest.FixtureRequest, major: int) -> None:
    cluster = cluster_for(request, major)
    assert cluster.major == major
    assert re.fullmatch(rf"{major}\.\d+", cluster.version)
    assert cluster.psql("SHOW server_encoding") == "UTF8"
    assert cluster.psql("SHOW fsync") == "off"
    assert cluster.url("x") == f"postgresql://postgres@127.0.0.1:{cluster.port}/x"
    assert cluster.socket_dir.is_dir()


@pytest.mark.parametrize("major", MAJORS)
def test_tcp_login_needs_the_password(request: pytest.FixtureRequest, major: int) -> None:
    cluster = cluster_for(request, major)
    env = cluster.env()
    del env["PGPASSWORD"]
    result = subprocess.run(
        [cluster.tool("psql"), "-X", "--no-password", "-d", cluster.url(), "-c", "SELECT 1"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "password" in result.stderr


@pytest.mark.parametrize("major", MAJORS)
def test_hard_cases_load_dump_and_restore(request: pytest.FixtureRequest, major: int) -> None:
    cluster = cluster_for(request, major)
    source, copy = unique_db_name("hard_src"), unique_db_name("hard_copy")
    cluster.create_db(source)
    cluster.create_db(copy)
    try:
        cluster.psql_file(HARD_CASES_SQL, db=source)
        assert row_counts(cluster, source) == HARD_CASES_ROW_COUNTS

        dump = pg_dump(cluster, source)
        by_block = copy_rows(dump)
        assert sum(by_block.values()) == sum(HARD_CASES_ROW_COUNTS.values())
        assert by_block['public."Weird ""Table"""'] == 4
        assert by_block['inventory."produits_données"'] == 3

        cluster.psql(dump, db=copy)
        assert row_counts(cluster, copy) == HARD_CASES_ROW_COUNTS
        assert comparable(pg_dump(cluster, copy)) == comparable(dump)
    finally:
        cluster.drop_db(source)
        cluster.drop_db(copy)


def test_pgdb_is_a_fresh_empty_database(pgdb: PgDb) -> None:
    cluster, name = pgdb
    assert cluster.major == 15
    assert cluster.psql("SELECT current_database()", db=name) == name
    assert cluster.psql("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace", db=name) == "0"


def test_psql_errors_quote_the_server(pgdb: PgDb) -> None:
    with pytest.raises(ClusterError, match="no_such_table"):
        pgdb.cluster.psql("SELECT 1; SELECT * FROM no_such_table; SELECT 2", db=pgdb.name)


def test_create_db_with_another_encoding(pg17: Cluster) -> None:
    name = unique_db_name("latin1")
    pg17.create_db(name, encoding="LATIN1")
    try:
        assert pg17.psql("SHOW server_encoding", db=name) == "LATIN1"
    finally:
        pg17.drop_db(name)


def test_pg17_comes_from_dbkeeper_pg17_dir_when_the_installer_was_told_so(
    pg17: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scripts/install-test-deps unpacks PostgreSQL 17 into $DBKEEPER_PG17_DIR when it is set; the tests look there
    (and only there), and a server started from there is 17."""
    import conftest

    monkeypatch.delenv("DBKEEPER_TEST_PG17_BIN", raising=False)
    elsewhere = tmp_path / "pg17-here"
    (elsewhere / "postgresql-17.99.0-x86_64-unknown-linux-gnu").mkdir(parents=True)
    (elsewhere / "postgresql-17.99.0-x86_64-unknown-linux-gnu" / "bin").symlink_to(pg17.bindir)
    monkeypatch.setenv("DBKEEPER_PG17_DIR", str(elsewhere))
    found = conftest._pg17_bindir()
    assert found == elsewhere / "postgresql-17.99.0-x86_64-unknown-linux-gnu" / "bin"
    assert subprocess.run([found / "postgres", "--version"], capture_output=True, text=True).stdout.split()[-1][:3] == (
        "17."
    )
    monkeypatch.setenv("DBKEEPER_PG17_DIR", str(tmp_path / "empty"))
    assert conftest._pg17_bindir() is None  # told where, it does not fall back to another copy
    installer = (Path(__file__).parent.parent / "scripts" / "install-test-deps").read_text()
    assert "PG17_DIR=${DBKEEPER_PG17_DIR:-" in installer  # the variable both sides read
