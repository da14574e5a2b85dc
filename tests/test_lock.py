"""The per-source lock between real processes: exclusive, immediate, and gone when its holder dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbkeeper.errors import DbkeeperError, LockHeld
from dbkeeper.lock import SourceLock, identity, lock_dir, lock_path
from helpers import hold_lock


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = hold_lock(f"sqlite:///{tmp_path}/app.db")
    yield proc
    proc.kill()
    proc.wait()


def test_second_lock_fails_at_once_naming_the_holder(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    t0 = time.monotonic()
    with pytest.raises(LockHeld) as info, SourceLock(f"sqlite:///{tmp_path}/app.db", "app"):
        pass
    assert time.monotonic() - t0 < 1
    err = info.value
    assert err.message.startswith(f"another dbkeeper backup of app is running (pid {holder.pid}, since ")
    assert err.message.endswith(" UTC)")
    assert err.hint is not None and f"ps -fp {holder.pid}" in err.hint and "lock file" in err.hint
    assert err.exit_code == 1


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    url = f"sqlite:///{tmp_path}/app.db"
    with SourceLock(url, "app") as lock:
        doc = json.loads(lock.path.read_text())
        assert doc["pid"] == os.getpid() and doc["source"] == "app"
    assert lock.path.exists() and lock.path.read_text() == ""  # the file stays; its holder's note does not


def test_the_same_database_spelled_differently_shares_one_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    proc = hold_lock("postgresql://app:secret@DB1:5432/casino")
    try:
        for same in ("postgresql://backup@db1/casino", "postgres://db1:5432/casino?sslmode=require"):
            with pytest.raises(LockHeld), SourceLock(same, "casino"):
                pass
        with SourceLock("postgresql://app@db1:5433/casino", "other port"), SourceLock("sqlite:///casino.db", "x"):
            pass
    finally:
        proc.kill()
        proc.wait()


def test_lock_names_are_readable_and_hold_no_secret(tmp_path: Path) -> None:
    path = lock_path("postgresql://app:s3cret@db1:5432/casino", tmp_path)
    assert path.parent == tmp_path and path.name.startswith("casino-") and path.suffix == ".lock"
    assert "s3cret" not in path.name and "app" not in path.name
    assert identity("postgresql://app:s3cret@db1/casino") == ("casino", "postgresql://db1:5432/casino")


def test_sqlite_relative_and_absolute_paths_are_one_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert lock_path("sqlite:///app.db") == lock_path(f"sqlite:///{tmp_path}/app.db") == lock_path("./app.db")


def test_lock_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBKEEPER_LOCK_DIR", str(tmp_path / "locks"))
    assert lock_dir() == tmp_path / "locks"
    with SourceLock("sqlite:///a.db", "a") as lock:
        assert lock.path.parent == tmp_path / "locks"
        assert oct(lock.path.parent.stat().st_mode & 0o777) == "0o700"
        assert oct(lock.path.stat().st_mode & 0o777) == "0o600"
    monkeypatch.delenv("DBKEEPER_LOCK_DIR")
    monkeypatch.setenv("DBKEEPER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))  # not used: cron has no XDG_RUNTIME_DIR
    assert lock_dir() == tmp_path / "state" / "locks"  # the state directory's (tests/test_state.py)


def test_an_unwritable_lock_directory_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("DBKEEPER_LOCK_DIR", str(blocker / "locks"))
    with pytest.raises(DbkeeperError, match="cannot create the lock file") as info, SourceLock("sqlite:///a.db", "a"):
        pass
    assert "DBKEEPER_LOCK_DIR" in str(info.value.hint)
