"""The plain dump replayed over two sessions gives exactly what one session gives."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dbkeeper.engines.postgres.dumpformat import split_entries
from dbkeeper.engines.postgres.load import assign
from hard_cases import HARD_CASES_ROW_COUNTS
from helpers import cli, cli_json
from pg import Cluster, PgDb
from pgutil import comparable_dump, databases


def test_assign_balances_by_weight() -> None:
    parts = assign({"a": 100, "b": 60, "c": 50, "d": 1})
    assert sorted(map(sorted, parts)) == [["a", "d"], ["b", "c"]]
    assert assign({"only": 5}) == [{"only"}, set()]


@pytest.mark.parametrize("seed", range(20))
def test_split_entries_keeps_every_byte_and_names_every_entry(hard_db: PgDb, seed: int) -> None:
    cluster, name = hard_db
    import subprocess

    dump = subprocess.run(
        [cluster.tool("pg_dump"), "-d", name], env=cluster.env(), capture_output=True, check=True
    ).stdout
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(dump)), rng.randint(0, 300)))
    pieces = list(split_entries([dump[i:j] for i, j in zip([0, *cuts], [*cuts, len(dump)], strict=True)]))
    assert b"".join(p.data for p in pieces) == dump
    kinds = {p.entry: p.kind for p in pieces}
    assert kinds[0] == "" and list(kinds.values()).count("TABLE DATA") == len(HARD_CASES_ROW_COUNTS)
    copied = {p.table for p in pieces if p.kind == "TABLE DATA" and p.table}
    assert len(copied) == len(HARD_CASES_ROW_COUNTS)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg15: Cluster) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PGPASSWORD", pg15.env()["PGPASSWORD"])


def test_two_sessions_restore_exactly_what_one_does(hard_db: PgDb, capsys: pytest.CaptureFixture[str]) -> None:
    cluster, name = hard_db
    cluster.psql(
        "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g;"
        "ALTER TABLE bulk ADD PRIMARY KEY (id); CREATE INDEX bulk_v ON bulk (v);",
        db=name,
    )
    assert cli(capsys, "backup", hard_db.url)[0] == 0
    one, two = f"{name}_j1", f"{name}_j2"
    code, _ = cli_json(capsys, "restore", "latest", cluster.url(one), "--jobs", "1")
    assert code == 0
    code, doc = cli_json(capsys, "restore", "latest", cluster.url(two), "--jobs", "2")
    assert code == 0 and doc["rows"] == sum(HARD_CASES_ROW_COUNTS.values()) + 200000
    source = comparable_dump(cluster, name)
    assert comparable_dump(cluster, one) == source
    assert comparable_dump(cluster, two) == source
    assert not [d for d in databases(cluster) if "dbkeeper_" in d]
    cluster.drop_db(one)
    cluster.drop_db(two)


def test_jobs_out_of_range_is_a_usage_error(pgdb: PgDb, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "restore", "latest", pgdb.url, "--jobs", "0")
    assert code == 2 and "--jobs must be at least 1" in err
