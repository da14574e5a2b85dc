"""backup --format custom: pg_dump's archive, checked through pg_restore's text, restored with pg_restore -j."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from hard_cases import HARD_CASES_ROW_COUNTS
from helpers import backup_files, cli, cli_json
from pg import Cluster, PgDb
from pgutil import comparable_dump, databases, unquote_qualified


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg15: Cluster) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PGPASSWORD", pg15.env()["PGPASSWORD"])


def test_custom_archive_round_trip_with_parallel_restore(
    hard_db: PgDb, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cluster, name = hard_db
    code, doc = cli_json(capsys, "backup", hard_db.url, "--format", "custom")
    assert code == 0, doc
    manifest = doc["backups"][0]["manifest"]
    assert manifest["dump_format"] == "custom" and manifest["file"].endswith(".dump.gz")
    assert {unquote_qualified(k): v for k, v in manifest["row_counts"].items()} == HARD_CASES_ROW_COUNTS
    archive = gzip.decompress((tmp_path / "backups" / doc["backups"][0]["name"]).read_bytes())
    assert archive.startswith(b"PGDMP")  # pg_restore reads it after gunzip
    code, out, _ = cli(capsys, "verify", "latest")
    assert code == 0 and "verified" in out
    target = f"{name}_arch"
    code, result = cli_json(capsys, "restore", "latest", cluster.url(target), "--jobs", "3")
    assert code == 0 and result["rows"] == sum(HARD_CASES_ROW_COUNTS.values())
    assert comparable_dump(cluster, target) == comparable_dump(cluster, name)
    assert not [d for d in databases(cluster) if "dbkeeper_" in d]
    cluster.drop_db(target)


def test_archive_cut_short_is_refused_even_with_recomputed_checksums(
    pgdb: PgDb, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cluster, name = pgdb
    cluster.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g", db=name)
    assert cli(capsys, "backup", pgdb.url, "--format", "custom")[0] == 0
    store = tmp_path / "backups"
    data = backup_files(store)[0]
    archive = gzip.decompress((store / data).read_bytes())
    damaged = gzip.compress(archive[: len(archive) // 2])
    (store / data).write_bytes(damaged)
    digest = hashlib.sha256(damaged).hexdigest()
    (store / f"{data}.sha256").write_text(f"{digest}  {data.split('/')[-1]}\n")
    doc = json.loads((store / f"{data}.json").read_text())
    doc.update(sha256=digest, size_bytes=len(damaged))
    (store / f"{data}.json").write_text(json.dumps(doc))
    code, out, _ = cli(capsys, "verify", str(store / data))
    assert code == 3 and "FAILED  content" in out
    code, _, err = cli(capsys, "restore", str(store / data), cluster.url(f"{name}_x"))
    assert code == 3 and "nothing was restored" in err, err
    assert not [d for d in databases(cluster) if "dbkeeper_" in d or d == f"{name}_x"]


def test_format_custom_is_for_postgresql(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    sqlite3.connect(tmp_path / "app.db").close()
    code, _, err = cli(capsys, "backup", "sqlite:///app.db", "--format", "custom")
    assert code == 2 and "is for PostgreSQL" in err
