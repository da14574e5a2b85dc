"""What anyone who shares a store can do, through the real CLI: same-name sources on two real servers, look-alike
names, skewed clocks, malformed manifests, killed writers, unfinished uploads, and stores of the old layout."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dbkeeper.repo import names
from helpers import backup_files, cli, cli_json, make_sqlite_app, run_dbkeeper
from pg import PASSWORD, Cluster, unique_db_name


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "DBKEEPER_STORE", "DBKEEPER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    return tmp_path


def sets(store: Path) -> list[str]:
    """The data objects of the store's backup sets."""
    return [f for f in backup_files(store) if names.parse(f) is not None]


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr


def test_the_same_database_name_on_two_servers_keeps_two_histories(
    pg15: Cluster, pg17: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = unique_db_name("casino")
    for cluster, rows in ((pg15, 3), (pg17, 5)):
        cluster.create_db(db)
        cluster.psql(f"CREATE TABLE players AS SELECT g AS id FROM generate_series(1, {rows}) g", db=db)
    try:
        (tmp_path / "dbkeeper.toml").write_text(
            f'pg_bin = "{pg17.bindir}"\n'
            f'[[sources]]\nname = "casino-eu"\nurl = "{pg15.url(db)}"\n'
            f'[[sources]]\nname = "casino-us"\nurl = "{pg17.url(db)}"\n'
        )
        for _ in range(3):
            code, doc = cli_json(capsys, "backup", "--parallel-sources", "2")
            assert code == 0, doc
            locations = [b["location"] for b in doc["backups"]]
            assert len(set(locations)) == 2
        stored = sets(tmp_path / "backups")
        assert len(stored) == 6  # not 3: nothing was written over
        assert sorted({s.split("/")[0] for s in stored}) == ["casino-eu", "casino-us"]

        code, _out, err = cli(capsys, "restore", "latest", pg17.url(f"{db}_r"), "--database", db)
        assert code == 2 and "several sources" in err and "casino-eu" in err and "--source" in err
        code, doc = cli_json(capsys, "restore", "latest", pg17.url(f"{db}_r"), "--source", "casino-us")
        assert code == 0, doc
        assert pg17.psql("SELECT count(*) FROM players", db=f"{db}_r").strip() == "5"  # the US server's data

        code, doc = cli_json(capsys, "prune", "--keep-last", "1")
        assert code == 0 and doc["removed"] == 4
        assert len(sets(tmp_path / "backups")) == 2  # one per source
    finally:
        for cluster in (pg15, pg17):
            cluster.drop_db(db)
        pg17.drop_db(f"{db}_r")


def test_look_alike_database_names_never_share_a_retention_group(
    pg15: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = unique_db_name("app")
    spaced, underscored = f"{base} db", f"{base}_db"
    for db in (spaced, underscored):
        pg15.create_db(db)
    try:
        for db in (spaced, underscored, underscored):
            url = pg15.url(db.replace(" ", "%20"))
            assert cli(capsys, "backup", url)[0] == 0
        code, doc = cli_json(capsys, "prune", "--keep-last", "1")
        assert code == 0, doc
        left = sets(tmp_path / "backups")
        assert len(left) == 2 and len({s.split("/")[0] for s in left}) == 2  # "app db" kept its only backup
    finally:
        for db in (spaced, underscored):
            pg15.drop_db(db)


def test_two_sqlite_files_of_one_name_and_a_restore_that_must_say_which(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for folder, users in (("a", 10), ("b", 20)):
        (tmp_path / folder).mkdir()
        make_sqlite_app(tmp_path / folder / "app.db", users=users, sessions=1)
    assert cli(capsys, "backup", "a/app.db", "b/app.db")[0] == 0
    code, doc = cli_json(capsys, "list")
    sources = sorted({b["source"] for b in doc["backups"]})
    assert len(sources) == 2 and all(s.startswith("app-") for s in sources)
    code, _out, err = cli(capsys, "restore", "latest", "sqlite:///r.db", "--database", "app")
    assert code == 2 and "several sources" in err and not (tmp_path / "r.db").exists()
    a_source = next(b["source"] for b in doc["backups"] if b["row_counts"]["users"] == 10)
    assert cli(capsys, "restore", "latest", "sqlite:///r.db", "--source", a_source)[0] == 0
    with sqlite3.connect(tmp_path / "r.db") as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (10,)


def test_backup_name_gives_the_source_its_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_sqlite_app(tmp_path / "app.db", users=5, sessions=1)
    assert cli(capsys, "backup", "app.db", "--name", "shop")[0] == 0
    assert cli(capsys, "backup", "app.db", "--name", "shop")[0] == 0  # the same second: -2, never the same file
    assert [s.split("/")[0] for s in sets(tmp_path / "backups")] == ["shop", "shop"]
    code, _out, err = cli(capsys, "backup", "app.db", "--name", "../x")
    assert code == 2 and "cannot name a source" in err


def _rewrite_manifest(store: Path, name: str, **changes: Any) -> None:
    path = store / names.manifest(name)
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def test_a_future_dated_manifest_warns_and_never_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_sqlite_app(tmp_path / "app.db", users=5, sessions=1)
    assert cli(capsys, "backup", "app.db", "--name", "app")[0] == 0
    assert cli(capsys, "backup", "app.db", "--name", "app")[0] == 0
    real, skewed = sets(tmp_path / "backups")
    _rewrite_manifest(tmp_path / "backups", skewed, created_at="2027-12-31T00:00:00Z")
    code, doc = cli_json(capsys, "status")
    assert code == 1 and doc["state"] == "WARNING"
    [series] = doc["databases"]
    assert series["state"] == "WARNING" and series["newest_backup"]["name"] == real
    assert "in the future" in series["warnings"][0]
    code, doc = cli_json(capsys, "verify", "latest")
    assert code == 0 and doc["backup"] == real
    prom = tmp_path / "m.prom"
    assert cli(capsys, "backup", "app.db", "--name", "app", "--metrics-file", str(prom))[0] == 0
    stamp = next(
        float(line.split()[-1])
        for line in prom.read_text().splitlines()
        if line.startswith("dbkeeper_backup_last_success_timestamp_seconds{")
    )
    assert stamp <= time.time() + 1
    assert 'dbkeeper_backup_future_dated{source="app",database="app"} 1' in prom.read_text()


@pytest.mark.parametrize(
    "change",
    [
        {"created_at": 1700000000},
        {"created_at": None},
        {"row_counts": [1, 2]},
        {"row_counts": None},
        {"extra": "x"},
        {"encryption": "age"},
        {"source": [1]},
    ],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()),
)
def test_a_malformed_manifest_breaks_no_command(tmp_path: Path, change: dict[str, Any]) -> None:
    make_sqlite_app(tmp_path / "app.db", users=5, sessions=1)
    env = {"DBKEEPER_LOCK_DIR": str(tmp_path / "locks")}
    assert run_dbkeeper("backup", "app.db", "--name", "app", env=env).returncode == 0
    assert run_dbkeeper("backup", "app.db", "--name", "app", env=env).returncode == 0
    bad = sets(tmp_path / "backups")[1]
    _rewrite_manifest(tmp_path / "backups", bad, **change)
    for argv, codes in [
        (["list"], {0}),
        (["status"], {0, 2}),
        (["prune", "--keep-last", "1"], {0}),
        (["drill", "--log", "drills.md"], {0}),
        (["copy", "latest", "--to", "offsite"], {0}),
        (["backup", "app.db", "--name", "app", "--metrics-file", "m.prom"], {0}),
        (["verify", bad], {3}),
    ]:
        done = run_dbkeeper(*argv, env=env)
        no_traceback(done)
        assert done.returncode in codes, (argv, done.stdout, done.stderr)
    listing = run_dbkeeper("list", env=env).stdout
    assert "BROKEN: unreadable manifest" in listing
    assert (tmp_path / "backups" / bad).exists()  # retention never removes it


_SLOW_SOURCE = """
import sys, time
from dbkeeper.storage.local import LocalStore
def chunks():
    yield b"x" * 1_000_000
    print("writing", flush=True)
    time.sleep(60)
    yield b"y"
LocalStore(sys.argv[1]).put("app/app_20261127_020000.db.gz", chunks(), if_absent=True)
"""


def test_a_killed_writer_leaves_a_leftover_that_list_reports_and_cleanup_removes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "backups"
    writer = subprocess.Popen([sys.executable, "-c", _SLOW_SOURCE, str(store)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    code, doc = cli_json(capsys, "list")
    [leftover] = doc["leftovers"]
    assert leftover["in_use"] and not leftover["stale"]
    code, out, _ = cli(capsys, "cleanup", "--older-than", "0s")
    assert code == 0 and "keep" in out  # a running write's file is never removed
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    code, out, _ = cli(capsys, "list")
    assert "LEFTOVER: temporary file for app/app_20261127_020000.db.gz" in out
    code, doc = cli_json(capsys, "status")
    assert doc["leftovers"] == []  # younger than an hour: a write may still be starting
    for path in store.rglob("*dbkeeper-tmp*"):
        old = time.time() - 7200
        os.utime(path, (old, old))
    code, doc = cli_json(capsys, "status")
    assert doc["state"] != "OK" and code == {"WARNING": 1, "CRITICAL": 2}[doc["state"]] and len(doc["leftovers"]) == 1
    code, out, _ = cli(capsys, "cleanup", "--dry-run")
    assert code == 0 and "would remove" in out and list(store.rglob("*dbkeeper-tmp*"))
    code, out, _ = cli(capsys, "cleanup")
    assert code == 0 and "removed" in out
    assert not list(store.rglob("*dbkeeper-tmp*"))
    assert cli_json(capsys, "list")[1]["leftovers"] == []


def test_unfinished_s3_uploads_are_reported_and_aborted(
    s3_env: dict[str, str], s3_bucket: str, s3_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"s3://{s3_bucket}/team"
    upload = s3_client.create_multipart_upload(Bucket=s3_bucket, Key="team/app/app_20261127_020000.db.gz")
    s3_client.upload_part(
        Bucket=s3_bucket, Key="team/app/app_20261127_020000.db.gz", UploadId=upload["UploadId"], PartNumber=1, Body=b"x"
    )
    code, doc = cli_json(capsys, "list", "--store", store)
    assert [lo["kind"] for lo in doc["leftovers"]] == ["unfinished upload"]
    code, out, _ = cli(capsys, "cleanup", "--store", store, "--older-than", "0s", "--dry-run")
    assert code == 0 and "would remove" in out and s3_client.list_multipart_uploads(Bucket=s3_bucket)["Uploads"]
    code, out, _ = cli(capsys, "cleanup", "--store", store, "--older-than", "0s")
    assert code == 0 and "removed" in out
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_globals_and_the_database_back_up_in_parallel(
    pg15: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = unique_db_name("globals")
    pg15.create_db(db)
    try:
        code, doc = cli_json(capsys, "backup", pg15.url(db), "--globals", "--parallel-sources", "2")
        assert code == 0 and all(b["ok"] for b in doc["backups"]), doc
        stored = sets(tmp_path / "backups")
        assert len(stored) == 2 and len({s.split("/")[0] for s in stored}) == 1  # one source, two series
        code, doc = cli_json(capsys, "verify", "latest", "--database", db)
        assert code == 0 and ".globals" not in doc["backup"]
    finally:
        pg15.drop_db(db)


def _legacy_store(tmp_path: Path) -> tuple[Path, list[str]]:
    """A store as dbkeeper wrote it before source ids: flat names, format 1 manifests."""
    make_sqlite_app(tmp_path / "app.db", users=7, sessions=1)
    assert run_dbkeeper("backup", "app.db", "--name", "app", "--store", "new").returncode == 0
    [made] = sets(tmp_path / "new")
    doc = json.loads((tmp_path / "new" / names.manifest(made)).read_text())
    store = tmp_path / "backups"
    store.mkdir()
    legacy = []
    for day in (25, 26, 27):
        file = f"app_202611{day}_020000.db.gz"
        old = {k: v for k, v in doc.items() if k not in ("format_version", "source_id")}
        old.update(format=1, file=file, created_at=f"2026-11-{day}T02:00:00Z", completed_at=f"2026-11-{day}T02:00:01Z")
        (store / file).write_bytes((tmp_path / "new" / made).read_bytes())
        (store / f"{file}.sha256").write_text(f"{doc['sha256']}  {file}\n")
        (store / f"{file}.json").write_text(json.dumps(old))
        legacy.append(file)
    return store, legacy


def test_a_store_of_the_previous_layout_still_lists_verifies_restores_and_prunes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, legacy = _legacy_store(tmp_path)
    code, doc = cli_json(capsys, "list")
    assert [(b["name"], b["source"], b["status"]) for b in doc["backups"]] == [(n, "app", "ok") for n in legacy]
    assert cli_json(capsys, "verify", legacy[0])[0] == 0
    assert cli_json(capsys, "verify", "latest", "--database", "app")[1]["backup"] == legacy[-1]
    assert cli(capsys, "restore", "latest", "sqlite:///r.db")[0] == 0
    with sqlite3.connect(tmp_path / "r.db") as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (7,)
    # New backups of the source named "app" join the same history; retention counts both layouts together.
    assert cli(capsys, "backup", "app.db", "--name", "app")[0] == 0
    code, doc = cli_json(capsys, "prune", "--keep-last", "2")
    assert code == 0 and doc["removed"] == 2
    left = sets(store)
    assert len(left) == 2 and legacy[-1] in left and next(n for n in left if n != legacy[-1]).startswith("app/")
    code, doc = cli_json(capsys, "status", "--max-age", "1000d")
    assert code == 0, doc


def test_status_of_a_stale_backup_judges_by_the_store_clock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_sqlite_app(tmp_path / "app.db", users=5, sessions=1)
    assert cli(capsys, "backup", "app.db", "--name", "app")[0] == 0
    [name] = sets(tmp_path / "backups")
    # The manifest says "just now" while the store has held the set for 30 days.
    now = datetime.now(UTC).replace(microsecond=0)
    _rewrite_manifest(tmp_path / "backups", name, created_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    old = (now - timedelta(days=30)).timestamp()
    for part in names.files(name):
        os.utime(tmp_path / "backups" / part, (old, old))
    code, doc = cli_json(capsys, "status")
    assert code == 2 and doc["databases"][0]["state"] == "CRITICAL"
    assert "older than" in doc["databases"][0]["problems"][0]
