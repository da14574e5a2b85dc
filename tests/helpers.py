"""Shared test helpers: run the CLI in-process or as a real process, build small SQLite apps."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from dbkeeper.cli import main


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code, out, _err = cli(capsys, *argv, "--json")
    return code, json.loads(out)


def run_dbkeeper(
    *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """dbkeeper as a real process (for signals, resource limits and the exact text a user sees)."""
    return subprocess.run(
        [sys.executable, "-m", "dbkeeper", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        **kw,
    )


_HOLD_LOCK = """
import sys, time
from dbkeeper.lock import SourceLock
with SourceLock(sys.argv[1], "the holder"):
    print("locked", flush=True)
    time.sleep(120)
"""


def hold_lock(url: str) -> subprocess.Popen[str]:
    """Another process holding ``url``'s backup lock until it is killed (the caller kills it)."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def wait_for_lock(pid: int | None = None, timeout: float = 30) -> int:
    """Wait until a dbkeeper backup (``pid``, or any) holds a source lock in $DBKEEPER_LOCK_DIR; its pid.

    A lock file is only a note: a holder killed by SIGKILL leaves its pid behind, so the lock itself is tried.
    """
    import fcntl
    import time

    locks = Path(os.environ["DBKEEPER_LOCK_DIR"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in locks.glob("*.lock"):
            with path.open("r") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    text = f.read()
                    holder = json.loads(text).get("pid") if text else None
                    if holder and (pid is None or holder == pid):
                        return int(holder)
        time.sleep(0.05)
    pytest.fail(f"no dbkeeper backup{f' (pid {pid})' if pid else ''} took a source lock within {timeout:g}s")


def make_sqlite_app(path: Path, users: int = 3000, sessions: int = 2500) -> Path:
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, bio TEXT, avatar BLOB);
            CREATE TABLE game_sessions (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id),
                                        score REAL, started TEXT);
            CREATE INDEX game_sessions_user ON game_sessions(user_id);
            CREATE TABLE [odd "name"] (x);
            """
        )
        conn.executemany(
            "INSERT INTO users (name, bio, avatar) VALUES (?, ?, ?)",
            [
                (f"user {i} ✓", None if i % 7 == 0 else "line\nbreak 'quote'", bytes([i % 256]) * 16)
                for i in range(users)
            ],
        )
        conn.executemany(
            "INSERT INTO game_sessions (user_id, score, started) VALUES (?, ?, datetime('now'))",
            [(i % users + 1, i * 1.5) for i in range(sessions)],
        )
    return path


def backup_files(store: Path) -> list[str]:
    """Every file in a directory store, hidden ones too, as a path relative to it (``app-1a2b3c4d/app_….db.gz``)."""
    if not store.exists():
        return []
    return sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file())


def backup_at(source: str, store: Path, when: datetime, name: str | None = None) -> str:
    """Back ``source`` up into ``store`` as if it ran at ``when`` (the pipeline's clock), as the source ``name``
    (else the id derived from it); returns the set's name in the store.

    Real dumps with made-up start times: how tests get a store with backups of several ages in no time.
    """
    from dbkeeper.engines import engine_for, source_key
    from dbkeeper.pipeline import BackupOptions, run_backup
    from dbkeeper.repo import Repository
    from dbkeeper.repo.sources import source_id
    from dbkeeper.storage.local import LocalStore

    repo = Repository(LocalStore(store))
    doc = run_backup(engine_for(source), repo, source_id(source_key(source), name), BackupOptions(), clock=lambda: when)
    return doc.name


SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "json"


def schema(name: str) -> dict[str, Any]:
    """docs/json/<name>.schema.json, checked to be a JSON Schema itself."""
    import jsonschema

    doc: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


def check_json(doc: Any, name: str) -> None:
    """``doc`` is what docs/json/<name>.schema.json describes, with ``format_version`` first."""
    import jsonschema

    assert isinstance(doc, dict) and doc.get("format_version") == 1, doc
    assert next(iter(doc)) == "format_version"  # first, where a reader of a stream sees it at once
    jsonschema.validate(doc, schema(name), cls=jsonschema.Draft202012Validator)
