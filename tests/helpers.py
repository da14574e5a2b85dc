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
    return sorted(p.name for p in store.iterdir()) if store.exists() else []


def backup_at(source: str, store: Path, when: datetime, name: str | None = None) -> str:
    """Back ``source`` up into ``store`` as if it ran at ``when`` (the pipeline's clock); returns the file name.

    Real dumps with made-up start times: how tests get a store with backups of several ages in no time.
    """
    from dbkeeper.engines import engine_for
    from dbkeeper.pipeline import BackupOptions, run_backup
    from dbkeeper.storage.local import LocalStore

    doc = run_backup(engine_for(source, name=name), LocalStore(store), BackupOptions(), clock=lambda: when)
    return doc.file
