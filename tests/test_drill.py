"""Drills on real PostgreSQL and SQLite: pass, fail, leave nothing behind, never touch the source, log a row."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from dbkeeper import drill, drill_log
from helpers import backup_at, backup_files, cli, cli_json, make_sqlite_app, run_dbkeeper
from pg import Cluster, PgDb
from pgutil import comparable_dump, databases

SMOKE = """\
-- The casino's smoke test, cut down.
-- expect: rows >= 1000
SELECT count(*) FROM users;

-- expect: orphans = 0
SELECT count(*) FROM game_sessions WHERE user_id NOT IN (SELECT id FROM users);
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    scratch_tmp = tmp_path / "tmp"
    scratch_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_tmp))  # where SQLite drills put their scratch files
    (tmp_path / "smoke.sql").write_text(SMOKE)
    return tmp_path


@pytest.fixture
def pg(pg15: Cluster, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PGPASSWORD", pg15.env()["PGPASSWORD"])
    return pg15


def _seed(cluster: Cluster, db: str) -> None:
    cluster.psql(
        "CREATE TABLE users (id int PRIMARY KEY, name text);"
        "INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 1500) g;"
        "CREATE TABLE game_sessions (id int PRIMARY KEY, user_id int REFERENCES users, score int);"
        "INSERT INTO game_sessions SELECT g, g % 1500 + 1, g * 7 % 1000 FROM generate_series(1, 3000) g;",
        db=db,
    )


def _configured(pgdb: PgDb) -> str:
    """The database as a source named in dbkeeper.toml: a drill restores on that source's server."""
    Path("dbkeeper.toml").write_text(f'[[sources]]\nname = "{pgdb.name}"\nurl = "{pgdb.url}"\n')
    return pgdb.name


def _leftovers(cluster: Cluster) -> list[str]:
    return sorted(d for d in databases(cluster) if re.search(r"_drill_\d{8}_\d{6}$|_dbkeeper_(tmp|old)_", d))


# -- PostgreSQL ---------------------------------------------------------------------------------------------


def test_drill_passes_and_never_touches_the_source(pg: Cluster, pgdb: PgDb, capsys: pytest.CaptureFixture[str]) -> None:
    cluster, name = pgdb
    _seed(cluster, name)
    assert cli(capsys, "backup", _configured(pgdb))[0] == 0
    source_before = comparable_dump(cluster, name)
    databases_before = databases(cluster)

    # The source refuses every connection during the drill, and a watcher notes every database that exists.
    cluster.psql(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
    seen: set[str] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.update(databases(cluster))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        code, doc = cli_json(capsys, "drill", "--smoke", "smoke.sql")
    finally:
        stop.set()
        watcher.join()
        cluster.psql(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')

    assert code == 0, doc
    [result] = doc["drills"]
    assert result["result"] == "PASS" and result["rows"] == 4500 and result["anomalies"] == []
    assert [c["name"] for c in result["checks"]] == ["backup", "restore", "smoke 1", "smoke 2", "cleanup"]
    assert all(c["ok"] for c in result["checks"])
    assert result["checks"][2]["detail"] == "SELECT count(*) FROM users -> 1500 (rows >= 1000)"
    # In a throwaway cluster of its own: nothing at all was created on the backup's server.
    assert re.fullmatch(
        rf"{name[:40]}_drill_\d{{8}}_\d{{6}} in a throwaway PostgreSQL 15 cluster \(as \w+, socket only\)",
        result["target"],
    ), result["target"]
    assert seen - databases_before == set()
    assert databases(cluster) == databases_before
    assert comparable_dump(cluster, name) == source_before

    [row] = drill_log.read(drill_log.default_path())
    assert row.database == name and row.passed and row.backup == result["backup"]
    assert row.checks == "5/5 OK" and row.restore_seconds is not None and row.restore_seconds > 0


def test_failed_smoke_check_fails_the_drill_and_the_scratch_database_is_dropped(
    pg: Cluster, pgdb: PgDb, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cluster, name = pgdb
    _seed(cluster, name)
    assert cli(capsys, "backup", _configured(pgdb))[0] == 0
    (tmp_path / "bad.sql").write_text(
        "-- expect: rows >= 1000000\nSELECT count(*) FROM users;\n"
        "SELECT count(*) FROM no_such_table;\n"
        "-- expect: value = 1\nSELECT 1;\n"
    )
    code, out, err = cli(capsys, "drill", "--smoke", "bad.sql", "--log", "drills.md")
    assert code == 3, err
    assert out.startswith(f"FAIL {name} in ")
    assert "FAILED  smoke 1  SELECT count(*) FROM users -> 1500, expected rows >= 1000000" in out
    assert 'relation "no_such_table" does not exist' in out
    assert "OK      smoke 3  SELECT 1 -> 1 (value = 1)" in out
    assert re.search(r"OK      cleanup  dropped \S+_drill_\d{8}_\d{6} in a throwaway PostgreSQL", out)
    assert "0 of 1 drill(s) passed" in out
    assert _leftovers(cluster) == []
    [row] = drill_log.read(tmp_path / "drills.md")
    assert row.result == "FAIL" and row.checks == "4/6 OK"
    assert row.anomalies.startswith("smoke 1: SELECT count(*) FROM users -> 1500, expected rows >= 1000000; smoke 2:")


@pytest.mark.parametrize("damage", ["flip", "row-counts"])
def test_damaged_backup_fails_the_drill_and_nothing_is_created(
    pg: Cluster, pgdb: PgDb, capsys: pytest.CaptureFixture[str], tmp_path: Path, damage: str
) -> None:
    cluster, name = pgdb
    _seed(cluster, name)
    assert cli(capsys, "backup", _configured(pgdb))[0] == 0
    store = tmp_path / "backups"
    data = backup_files(store)[0]
    if damage == "flip":
        raw = bytearray((store / data).read_bytes())
        raw[len(raw) // 2] ^= 0x01
        (store / data).write_bytes(bytes(raw))
    else:  # a manifest that promises rows the dump does not hold
        doc = json.loads((store / (data + ".json")).read_text())
        doc["row_counts"]["public.users"] += 1
        (store / (data + ".json")).write_text(json.dumps(doc))
    before = databases(cluster)
    code, doc = cli_json(capsys, "drill", "--smoke", "smoke.sql")
    assert code == 3
    [result] = doc["drills"]
    assert result["result"] == "FAIL" and [c["name"] for c in result["checks"]] == ["backup", "restore"]
    restore = result["checks"][1]
    assert not restore["ok"] and "failed verification" in restore["detail"]
    assert "nothing was restored" in restore["detail"]
    assert ("checksum" if damage == "flip" else "row counts") in restore["detail"]
    assert databases(cluster) == before and _leftovers(cluster) == []
    [row] = drill_log.read(drill_log.default_path())
    assert row.result == "FAIL" and row.backup == data and "failed verification" in row.anomalies


def test_target_server_and_keep(pg: Cluster, pgdb: PgDb, capsys: pytest.CaptureFixture[str]) -> None:
    cluster, name = pgdb
    _seed(cluster, name)
    assert cli(capsys, "backup", _configured(pgdb))[0] == 0
    target = cluster.url("this_part_is_replaced") + "?sslmode=disable"
    code, doc = cli_json(capsys, "drill", "--target", target, "--keep")
    assert code == 0, doc
    [result] = doc["drills"]
    scratch = urlsplit(result["target"]).path.lstrip("/")
    assert result["target"] == cluster.url(scratch) + "?sslmode=disable"
    assert result["kept"] and result["checks"][-1]["detail"].startswith("kept ")
    assert cluster.psql("SELECT count(*) FROM game_sessions", db=scratch) == "3000"
    assert "this_part_is_replaced" not in databases(cluster)
    cluster.drop_db(scratch)


def test_unreachable_target_fails_the_drill_with_the_runbook_message(
    pg: Cluster, pgdb: PgDb, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, name = pgdb
    _seed(cluster, name)
    assert cli(capsys, "backup", _configured(pgdb))[0] == 0
    code, out, _ = cli(capsys, "drill", "--target", "postgresql://postgres@127.0.0.1:1/x")
    assert code == 3
    assert "FAILED  restore" in out and "cannot reach PostgreSQL at 127.0.0.1:1" in out and "Try: " in out
    [row] = drill_log.read(drill_log.default_path())
    assert row.result == "FAIL"


def test_a_drill_never_connects_to_a_server_a_manifest_names(
    pg: Cluster, pgdb: PgDb, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, name = pgdb
    _seed(cluster, name)
    cluster.psql("DO $$ BEGIN CREATE ROLE drill_owner; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    cluster.psql("ALTER TABLE users OWNER TO drill_owner", db=name)
    assert cli(capsys, "backup", pgdb.url, "--name", "shop")[0] == 0
    # A forger points the manifest at a server of theirs, where a drill would send the password and run the dump.
    [manifest] = (tmp_path / "backups" / "shop").glob("*.json")
    doc = json.loads(manifest.read_text())
    doc["source"] = {"host": "127.0.0.1", "port": cluster.port, "user": "mallory"}
    manifest.write_text(json.dumps(doc))
    before = databases(cluster)
    code, out, _ = cli(capsys, "drill", "--smoke", "smoke.sql")
    assert code == 0, out
    assert "in a throwaway PostgreSQL 15 cluster (as " in out  # where it ran, and as whom
    assert "mallory" not in cluster.server_log() and databases(cluster) == before
    for folder in {tempfile.gettempdir(), "/tmp"}:  # where a sandbox goes when run as root
        assert not list(Path(folder).glob("dbkeeper-sandbox-*"))  # the sandbox is gone


# -- SQLite -------------------------------------------------------------------------------------------------


def _sqlite_store(tmp_path: Path, ages_h: list[float], name: str = "app") -> list[str]:
    app = make_sqlite_app(tmp_path / f"{name}.db", users=1200, sessions=300)
    now = datetime.now(UTC).replace(microsecond=0)
    return [backup_at(str(app), tmp_path / "backups", now - timedelta(hours=h), name) for h in ages_h]


def test_sqlite_drill_passes_and_removes_its_scratch_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _sqlite_store(tmp_path, [3])
    code, out, _ = cli(capsys, "drill", "--smoke", "smoke.sql")
    assert code == 0, out
    assert out.startswith("PASS app in ")
    assert "OK      smoke 1  SELECT count(*) FROM users -> 1200 (rows >= 1000)" in out
    assert "1 of 1 drill(s) passed (max-age 7d, seed " in out
    assert list((tmp_path / "tmp").iterdir()) == []  # the scratch directory is gone
    assert (tmp_path / "app.db").stat().st_size > 0


def test_random_choice_is_repeatable_with_a_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = _sqlite_store(tmp_path, [1, 25, 49, 73, 97, 24 * 8])  # the last one is older than 7d
    picks = {seed: cli_json(capsys, "drill", "--seed", str(seed))[1]["drills"][0]["backup"] for seed in range(12)}
    assert cli_json(capsys, "drill", "--seed", "5")[1]["drills"][0]["backup"] == picks[5]
    assert set(picks.values()) <= set(names[:5]) and len(set(picks.values())) > 1
    code, doc = cli_json(capsys, "drill")
    assert code == 0 and isinstance(doc["seed"], int)  # drawn and reported, so it can be repeated
    again = cli_json(capsys, "drill", "--seed", str(doc["seed"]))[1]
    assert again["drills"][0]["backup"] == doc["drills"][0]["backup"]


def test_no_backup_younger_than_max_age_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [name] = _sqlite_store(tmp_path, [24 * 9])
    code, out, _ = cli(capsys, "drill")
    assert code == 3
    assert f"FAILED  backup  no backup younger than 7d (the newest good one, {name}, is 9d old)" in out
    [row] = drill_log.read(drill_log.default_path())
    assert row.result == "FAIL" and row.backup == "" and row.anomalies.startswith("backup: no backup younger than 7d")
    assert cli(capsys, "drill", "--max-age", "10d")[0] == 0


def test_two_drills_append_two_rows_and_warnings_do_not_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _sqlite_store(tmp_path, [140])  # 5d 20h: close to the 7d limit
    code, doc = cli_json(capsys, "drill")
    assert code == 0 and doc["drills"][0]["anomalies"] == [
        "the newest backup is 5d 20h old, close to max-age 7d: are backups still running?"
    ]
    # The previous drill, as logged, restored in almost no time: this one is "slow".
    monkeypatch.setattr(drill, "SLOW_MARGIN_S", 0.0)
    log = drill_log.default_path()
    [row] = drill_log.read(log)
    log.write_text(log.read_text().replace(f"| {row.restore_seconds:.3f} |", "| 0.000 |"))
    code, doc = cli_json(capsys, "drill", "--max-age", "30d")
    assert code == 0
    assert [a.split(":")[0] for a in doc["drills"][0]["anomalies"]] == ["slow restore"]
    rows = drill_log.read(log)
    assert [r.result for r in rows] == ["PASS", "PASS"] and "slow restore" in rows[1].anomalies


def test_every_database_in_the_store_is_drilled_and_target_dir_with_keep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _sqlite_store(tmp_path, [2], name="app")
    _sqlite_store(tmp_path, [2], name="shop")
    (tmp_path / "drills").mkdir()
    code, doc = cli_json(capsys, "drill", "--target", "drills", "--keep")
    assert code == 0, doc
    assert [d["database"] for d in doc["drills"]] == ["app", "shop"]
    kept = sorted(p.name for p in (tmp_path / "drills").iterdir())
    assert [re.sub(r"\d{8}_\d{6}", "STAMP", k) for k in kept] == ["app_drill_STAMP.db", "shop_drill_STAMP.db"]
    assert [r.database for r in drill_log.read(drill_log.default_path())] == ["app", "shop"]
    for kept_file in (tmp_path / "drills").iterdir():
        kept_file.unlink()
    code, doc = cli_json(capsys, "drill", "--database", "shop", "--target", "sqlite:///drills/anything.db")
    assert code == 0, doc
    assert [d["database"] for d in doc["drills"]] == ["shop"]
    assert list((tmp_path / "drills").iterdir()) == []  # dropped again without --keep


def test_a_database_with_no_backup_at_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _sqlite_store(tmp_path, [2])
    code, doc = cli_json(capsys, "drill", "--database", "casino")
    assert code == 3
    assert doc["drills"][0]["anomalies"] == ["backup: no backup younger than 7d (there is no good backup at all)"]
    (tmp_path / "empty").mkdir()
    code, _, err = cli(capsys, "drill", "--store", "empty")
    assert code == 2 and "no backups in empty" in err  # nothing to drill: what it names is not there


def test_interrupted_drill_still_drops_its_database(pg: Cluster, pgdb: PgDb, tmp_path: Path) -> None:
    cluster, name = pgdb
    _seed(cluster, name)
    assert run_dbkeeper("backup", _configured(pgdb), env={"PGPASSWORD": cluster.env()["PGPASSWORD"]}).returncode == 0
    (tmp_path / "slow.sql").write_text("SELECT pg_sleep(60);\n")
    child = subprocess.Popen(
        [sys.executable, "-m", "dbkeeper", "drill", "--smoke", "slow.sql", "--target", cluster.url()],
        env={**os.environ, "PGPASSWORD": cluster.env()["PGPASSWORD"]},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not cluster.psql("SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'"):
            assert time.monotonic() < deadline and child.poll() is None, child.communicate()
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert _leftovers(cluster) == []
    assert not cluster.psql("SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'")


def test_encrypted_backups_need_the_identity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    (tmp_path / "key.txt").write_text(f"# test key\n{identity}\n")
    make_sqlite_app(tmp_path / "app.db", users=1200, sessions=10)
    assert cli(capsys, "backup", "app.db", "--encrypt-to", str(identity.to_public()))[0] == 0
    code, doc = cli_json(capsys, "drill", "--smoke", "smoke.sql")
    assert code == 3
    restore = doc["drills"][0]["checks"][1]
    assert restore["detail"].endswith("is encrypted") and "--identity" in restore["hint"]
    code, doc = cli_json(capsys, "drill", "--smoke", "smoke.sql", "--identity", "key.txt")
    assert code == 0 and doc["drills"][0]["rows"] == 1210
