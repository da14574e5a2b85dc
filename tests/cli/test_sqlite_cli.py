"""The whole SQLite path through the CLI: backup, list, verify, restore, and what bad input gets."""

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
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


# -- interruptions: real signals to a real dbkeeper process ------------------------------------------------------


@pytest.fixture(scope="module")
def big_backup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A WAL-mode SQLite database big enough (~60 MB) that each step of a verify or restore takes a while, and its
    backup (uncompressed: the restore's temporary file fills at the speed of a copy)."""
    where = tmp_path_factory.mktemp("big")
    big = make_sqlite_app(where / "big.db", users=500_000, sessions=500_000)
    with sqlite3.connect(big) as conn:
        conn.execute("PRAGMA journal_mode=wal")
    store = where / "backups"
    done = run_dbkeeper("backup", str(big), "--compress", "none", "--store", str(store))
    assert done.returncode == 0, done.stderr
    [backup] = [p for p in store.rglob("*.db") if not p.name.startswith(".")]
    return big, backup


def _start(*argv: str, tmp: Path) -> subprocess.Popen[str]:
    tmp.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "dbkeeper", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp)},
    )


def _when(proc: subprocess.Popen[str], ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        assert proc.poll() is None, f"dbkeeper ended before {what}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"no {what} within 60s"
        time.sleep(0.002)


def _spooling(tmp: Path) -> Callable[[], bool]:
    """Verify's (and restore's) working copy exists and has data in it."""
    return lambda: any(p.stat().st_size > 0 for p in tmp.glob("dbkeeper-work-*/*.db"))


def _loading(directory: Path, target: str) -> Callable[[], bool]:
    """The restore's temporary file beside its target has data in it."""

    def ready() -> bool:
        for p in directory.glob(f".{target}.*.dbkeeper-tmp"):
            try:
                if p.stat().st_size > 1 << 20:
                    return True
            except FileNotFoundError:
                pass
        return False

    return ready


def _checked_out(proc: subprocess.Popen[str], sig: signal.Signals) -> None:
    """It stopped as the signal asks, with one true line and no traceback."""
    _out, err = proc.communicate(timeout=60)
    word = "interrupted" if sig == signal.SIGINT else "terminated"
    assert proc.returncode == 128 + sig, err
    assert err == f"dbkeeper: {word}; nothing partial was kept\n"


def _beside(directory: Path, name: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if name in p.name)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_verify_removes_its_working_copy(
    big_backup: tuple[Path, Path], tmp_path: Path, sig: signal.Signals
) -> None:
    _, backup = big_backup
    proc = _start("verify", str(backup), tmp=tmp_path / "tmp")
    _when(proc, _spooling(tmp_path / "tmp"), "working copy")
    proc.send_signal(sig)
    _checked_out(proc, sig)
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("point", ["spooling", "loading"])
def test_a_signal_mid_restore_to_a_new_file_leaves_nothing(
    big_backup: tuple[Path, Path], tmp_path: Path, sig: signal.Signals, point: str
) -> None:
    _, backup = big_backup
    out = tmp_path / "out"
    out.mkdir()
    proc = _start("restore", str(backup), str(out / "r.db"), tmp=tmp_path / "tmp")
    ready = _spooling(tmp_path / "tmp") if point == "spooling" else _loading(out, "r.db")
    _when(proc, ready, point)
    proc.send_signal(sig)
    _checked_out(proc, sig)
    assert list(out.iterdir()) == []  # no target, no temporary, no -wal/-shm of either
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_restore_over_a_file_leaves_it_as_it_was(
    big_backup: tuple[Path, Path], tmp_path: Path, sig: signal.Signals
) -> None:
    _, backup = big_backup
    out = tmp_path / "out"
    out.mkdir()
    target = make_sqlite_app(out / "r.db", users=10, sessions=5)
    with closing(sqlite3.connect(target)) as conn:
        conn.execute("PRAGMA journal_mode=wal")
    before = target.read_bytes()
    proc = _start("restore", str(backup), str(target), "--drop-existing", tmp=tmp_path / "tmp")
    _when(proc, _loading(out, "r.db"), "loading")
    proc.send_signal(sig)
    _checked_out(proc, sig)
    assert target.read_bytes() == before
    assert _beside(out, "r.db") == ["r.db"]  # no temporary, no -wal, -shm or -journal
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_signal_during_the_copy_into_an_existing_file_waits_for_it(
    big_backup: tuple[Path, Path], tmp_path: Path
) -> None:
    """The copy into an existing target is one SQLite transaction with SIGINT held: the target is the old database
    or the whole new one, never a mix, and nothing is left beside it."""
    _, backup = big_backup
    out = tmp_path / "out"
    out.mkdir()
    target = make_sqlite_app(out / "r.db", users=10, sessions=5)
    proc = _start("restore", str(backup), str(target), "--drop-existing", tmp=tmp_path / "tmp")
    journal = out / "r.db-journal"
    _when(proc, journal.exists, "the target's journal (the copy into it)")
    proc.send_signal(signal.SIGINT)
    _checked_out(proc, signal.SIGINT)
    assert _beside(out, "r.db") == ["r.db"]
    with closing(sqlite3.connect(target)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (500_000,)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_sigkill_during_the_copy_into_an_existing_file_leaves_it_to_sqlites_own_recovery(
    big_backup: tuple[Path, Path], tmp_path: Path
) -> None:
    """SIGKILL cannot wait: killed while it copies into the target, the restore leaves the target's own journal
    (never removed by dbkeeper: SQLite needs it to make the file whole), and the next open finds a whole database,
    the old one or (had the copy committed) the new one, never a mix."""
    _, backup = big_backup
    out = tmp_path / "out"
    out.mkdir()
    target = make_sqlite_app(out / "r.db", users=10, sessions=5)
    proc = _start("restore", str(backup), str(target), "--drop-existing", tmp=tmp_path / "tmp")
    journal = out / "r.db-journal"
    _when(proc, journal.exists, "the target's journal (the copy into it)")
    proc.kill()
    proc.wait()
    with closing(sqlite3.connect(target)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] in (10, 500_000)


def test_what_sigkill_leaves_is_found_and_removed(
    big_backup: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL cannot be caught: a killed verify's working copy and a killed restore's temporary stay, unlocked.
    The next command that makes a working copy removes the dead ones, the next restore to the same target removes
    its temporaries, `cleanup` finds both (the temporary directory; beside the config's SQLite sources), and
    nothing a running command holds is touched."""
    _, backup = big_backup
    tmp = tmp_path / "tmp"
    out = tmp_path / "out"
    out.mkdir()
    target = make_sqlite_app(out / "r.db", users=10, sessions=5)
    verify = _start("verify", str(backup), tmp=tmp)
    _when(verify, _spooling(tmp), "working copy")
    verify.kill()
    verify.wait()
    [dead] = list(tmp.iterdir())
    restore = _start("restore", str(backup), str(target), "--drop-existing", tmp=tmp)
    _when(restore, _loading(out, "r.db"), "loading")
    restore.kill()
    restore.wait()
    [workdir] = list(tmp.iterdir())
    assert workdir != dead  # the restore's own working copy removed the dead verify's
    [temp] = [p for p in out.iterdir() if p.name.endswith(".dbkeeper-tmp")]

    (tmp_path / "dbkeeper.toml").write_text(f'[[sources]]\nname = "app"\nurl = "sqlite:///{target}"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp))
    listed = run_dbkeeper("cleanup", "--store", str(tmp_path / "empty"), "--dry-run")
    assert listed.returncode == 0, listed.stderr
    assert f"keep         working directory {workdir} (" in listed.stdout  # younger than an hour
    seen = run_dbkeeper("cleanup", "--store", str(tmp_path / "empty"), "--older-than", "0s", "--json")
    assert seen.returncode == 0, seen.stderr
    actions = {(lo["kind"], lo["name"]): lo["action"] for lo in json.loads(seen.stdout)["leftovers"]}
    assert actions == {("working directory", workdir.name): "removed", ("restore temporary file", temp.name): "removed"}
    assert list(tmp.iterdir()) == [] and _beside(out, "r.db") == ["r.db"]

    running = _start("verify", str(backup), tmp=tmp)  # a live one: its working copy is never removed
    _when(running, _spooling(tmp), "a working copy")
    running.send_signal(signal.SIGSTOP)  # held mid-verify while cleanup looks, so that it cannot finish first
    try:
        if running.poll() is not None or not _spooling(tmp)():  # it was already done: nothing left to look at
            return
        seen = run_dbkeeper("cleanup", "--store", str(tmp_path / "empty"), "--older-than", "0s", "--json")
        assert [lo["action"] for lo in json.loads(seen.stdout)["leftovers"]] == ["keep"]
    finally:
        running.send_signal(signal.SIGINT)  # waiting for it when it goes on
        running.send_signal(signal.SIGCONT)
    _checked_out(running, signal.SIGINT)

    # Without cleanup: the next restore to that target removes what a killed one left beside it.
    restore = _start("restore", str(backup), str(target), "--drop-existing", tmp=tmp)
    _when(restore, _loading(out, "r.db"), "loading")
    restore.kill()
    restore.wait()
    [temp] = [p for p in out.iterdir() if p.name.endswith(".dbkeeper-tmp")]
    again = run_dbkeeper("restore", str(backup), str(target), "--drop-existing", env={"TMPDIR": str(tmp)})
    assert again.returncode == 0, again.stderr
    assert _beside(out, "r.db") == ["r.db"] and list(tmp.iterdir()) == []
