"""SQLite through the online backup API, with a writer active during the backup."""

import sqlite3
import threading
import time
from pathlib import Path

from dbkeeper.engines.sqlite import SqliteEngine
from dbkeeper.pipeline import BackupOptions, run_backup
from dbkeeper.repo import Repository
from dbkeeper.storage.local import LocalStore
from dbkeeper.verify import verify
from helpers import make_sqlite_app


def test_backup_is_consistent_while_the_app_writes(tmp_path: Path) -> None:
    db = make_sqlite_app(tmp_path / "app.db", users=20_000)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    stop = threading.Event()
    written = 0

    def writer() -> None:
        nonlocal written
        conn = sqlite3.connect(db, timeout=30)
        while not stop.is_set():
            with conn:  # each transaction inserts a matched pair: a consistent copy has equal counts
                conn.execute("INSERT INTO users (name) VALUES ('w')")
                conn.execute("INSERT INTO game_sessions (user_id, score) VALUES (1, 0)")
            written += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.2)
        repo = Repository(LocalStore(tmp_path / "backups"))
        docs = [run_backup(SqliteEngine(str(db)), repo, "app", BackupOptions()) for _ in range(3)]
    finally:
        stop.set()
        thread.join()
    assert written > 10
    for doc in docs:
        counts = doc.row_counts
        assert counts["users"] - 20_000 == counts["game_sessions"] - 2500  # pairs never split
        assert verify(repo, doc.name).ok


def test_backups_in_the_same_second_never_replace_each_other(tmp_path: Path) -> None:
    db = make_sqlite_app(tmp_path / "app.db", users=10, sessions=10)
    repo = Repository(LocalStore(tmp_path / "backups"))
    docs = [run_backup(SqliteEngine(str(db)), repo, "app", BackupOptions()) for _ in range(3)]
    assert len({d.name for d in docs}) == 3
    assert all(verify(repo, d.name).ok for d in docs)
