"""The whole SQLite path through the CLI: backup, list, verify, restore, and what bad input gets."""

import gzip
import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from helpers import backup_files, cli, cli_json, make_sqlite_app, run_dbkeeper


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return make_sqlite_app(tmp_path / "test_app.db")


def test_backup_writes_data_sidecar_and_manifest(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = cli_json(capsys, "backup", "sqlite:///test_app.db")
    assert code == 0 and doc["ok"]
    files = backup_files(app.parent / "backups")
    assert len(files) == 3
    data = files[0]
    source, _, file = data.partition("/")
    assert source == doc["backups"][0]["source_id"] and source.startswith("test_app-")  # the file's stem, a hash
    assert file.startswith("test_app_") and file.endswith(".db.gz")
    assert files[1:] == [data + ".json", data + ".sha256"]
    store = app.parent / "backups"
    assert oct(store.stat().st_mode & 0o777) == "0o700" and oct((store / source).stat().st_mode & 0o777) == "0o700"
    assert all(oct((store / f).stat().st_mode & 0o777) == "0o600" for f in files)
    done = subprocess.run(["sha256sum", "-c", file + ".sha256"], cwd=store / source, capture_output=True)
    assert done.returncode == 0
    manifest = json.loads((store / (data + ".json")).read_text())
    assert manifest["row_counts"] == {"users": 3000, "game_sessions": 2500, 'odd "name"': 0}
    assert manifest["engine"] == "sqlite" and manifest["file"] == file and manifest["source_id"] == source
    raw = gzip.decompress((store / data).read_bytes())
    assert raw.startswith(b"SQLite format 3\x00")


def test_restore_round_trip_and_drop_existing(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "backup", str(app))[0] == 0
    code, doc = cli_json(capsys, "restore", "latest", "sqlite:///restored.db")
    assert code == 0 and doc["rows"] == 5500 and not doc["replaced"]
    with sqlite3.connect(app.parent / "restored.db") as conn:
        assert conn.execute("SELECT count(*), max(name) FROM users").fetchone() == (3000, "user 999 ✓")
        conn.execute("DELETE FROM users WHERE id > 10")
    code, _out, err = cli(capsys, "restore", "latest", "sqlite:///restored.db")
    assert code == 1 and "already exists" in err and "--drop-existing" in err
    with sqlite3.connect(app.parent / "restored.db") as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (10,)  # untouched
    code, doc = cli_json(capsys, "restore", "latest", "sqlite:///restored.db", "--drop-existing")
    assert code == 0 and doc["replaced"]
    with sqlite3.connect(app.parent / "restored.db") as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (3000,)


def test_list_shows_incomplete_and_broken_entries(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "backup", "sqlite:///test_app.db")[0] == 0
    store = app.parent / "backups"
    (store / "test_app_20200101_000000.db.gz").write_bytes(b"partial")  # no manifest
    good = backup_files(store)[0]
    (store / "other_20200101_000000.db.gz.json").write_text("{}")  # manifest without data
    code, doc = cli_json(capsys, "list")
    assert code == 0
    status = {b["name"]: b["status"] for b in doc["backups"]}
    assert status == {
        "test_app_20200101_000000.db.gz": "incomplete",
        "other_20200101_000000.db.gz": "broken",
        good: "ok",
    }
    code, out, _ = cli(capsys, "list")
    assert "INCOMPLETE" in out and "BROKEN" in out


@pytest.mark.parametrize("damage", ["flip", "truncate", "truncate-recomputed"])
def test_damaged_backup_is_refused_by_verify_and_restore(
    app: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    assert cli(capsys, "backup", "sqlite:///test_app.db")[0] == 0
    store = app.parent / "backups"
    name = backup_files(store)[0]
    data = bytearray((store / name).read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        data = data[: len(data) // 2]
    (store / name).write_bytes(bytes(data))
    if damage == "truncate-recomputed":  # an attacker or a bug that also rewrote the checksums
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        (store / (name + ".sha256")).write_text(f"{digest}  {name.split('/')[-1]}\n")
        doc = json.loads((store / (name + ".json")).read_text())
        doc.update(sha256=digest, size_bytes=len(data))
        (store / (name + ".json")).write_text(json.dumps(doc))
    code, out, _ = cli(capsys, "verify", str(store / name))
    assert code == 3 and "FAILED" in out
    code, _, err = cli(capsys, "restore", str(store / name), "sqlite:///restored.db")
    assert code == 3 and "nothing was restored" in err
    assert not (app.parent / "restored.db").exists()
    assert [p for p in app.parent.iterdir() if "dbkeeper-tmp" in p.name] == []


def test_missing_source_is_a_clear_error(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "backup", "sqlite:///nope.db")
    assert code == 1 and err.startswith("dbkeeper: error: SQLite database nope.db does not exist")
    assert not (app.parent / "backups").exists() or backup_files(app.parent / "backups") == []


def test_disk_full_leaves_nothing_and_next_run_works(app: Path) -> None:
    big = make_sqlite_app(app.parent / "big.db", users=200_000, sessions=200_000)
    store = app.parent / "backups"

    def limit() -> None:  # RLIMIT_FSIZE: writes past 64 kB fail with EFBIG, as on a full disk
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    result = run_dbkeeper("backup", str(big), "--compress", "none", "--store", str(store), preexec_fn=limit)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("dbkeeper: error: no space left")
    assert backup_files(store) == []  # not even the hidden temporary
    ok = run_dbkeeper("backup", str(big), "--store", str(store))
    assert ok.returncode == 0, ok.stderr
    assert len(backup_files(store)) == 3


def test_sigkill_mid_backup_leaves_no_backup(app: Path) -> None:
    big = make_sqlite_app(app.parent / "big.db", users=300_000, sessions=300_000)
    store = app.parent / "backups"
    proc = subprocess.Popen(
        ["python", "-m", "dbkeeper", "backup", str(big), "--compress", "zstd", "--store", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill as soon as the temporary data file exists: mid-write.
    for _ in range(2000):
        if store.exists() and any(p.name.endswith(".dbkeeper-tmp") for p in store.iterdir()):
            break
        if proc.poll() is not None:
            break
        os.sched_yield()
    proc.kill()
    proc.wait()
    visible = [f for f in backup_files(store) if not f.startswith(".")]
    assert visible == []
    code = run_dbkeeper("list", "--store", str(store), "--json")
    if store.exists():
        assert code.returncode == 0 and json.loads(code.stdout)["backups"] == []
    else:  # killed before the store's directory was made: there is no store
        assert code.returncode == 2 and json.loads(code.stdout)["error"] == f"store {store} does not exist"
