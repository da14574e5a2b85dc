"""Every engine for the contract suite: a way to make a database of known rows, and a back door to find
what a dump or a restore left behind (temporary databases or files, dump sessions, spooled files)."""

from __future__ import annotations

import os
import signal
import sqlite3
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from dbkeeper.engines import Engine, engine_for
from dbkeeper.engines.postgres.dumpformat import TRAILER
from pg import Cluster

PG_TABLES = ("public.t", "public.u")
SQLITE_TABLES = ("t", "u")


@dataclass
class EngineCase:
    kind: str
    url: Callable[[str], str]
    """The URL of database ``name`` of this case (it need not exist)."""
    create: Callable[[str, int], Engine]
    """Make database ``name``: table t holds ``rows`` rows (id, payload), table u three; its engine."""
    exists: Callable[[str], bool]
    leftovers: Callable[[], list[str]]
    """What a dump or restore left behind: temporary databases or files, dump sessions, spooled files."""
    kill_dump: Callable[[], None]
    """Stop the running dump as a crash would: SIGKILL pg_dump; for SQLite (no child) interrupt the stream."""
    truncate: Callable[[bytes], bytes]
    """The dump cut before its end (PostgreSQL: before the 'dump complete' trailer)."""
    corrupt: Callable[[bytes], bytes]
    """The dump damaged so that loading it fails (not merely cut short)."""
    tables: tuple[str, str]
    db_name: Callable[[str], str]
    """The real name of this case's database ``name`` (what Engine.scratch takes)."""
    pg_bin: str | None = None

    def engine(self, name: str) -> Engine:
        return engine_for(self.url(name), pg_bin=self.pg_bin)


class Interrupted(Exception):
    """Stands for a kill of the process reading a SQLite dump (the engine runs no child to kill)."""


def _children(name: str) -> list[int]:
    """Our child processes called ``name``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if comm == name and int(fields[1]) == os.getpid():
            found.append(int(stat.parent.name))
    return found


def _private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the engines' temporary files go during the test, so that leftovers can be seen."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def _sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EngineCase:
    tmp = _private_tempdir(tmp_path, monkeypatch)
    dbs = tmp_path / "dbs"
    dbs.mkdir()

    def url(name: str) -> str:
        return str(dbs / f"{name}.db")

    def create(name: str, rows: int) -> Engine:
        with sqlite3.connect(url(name)) as conn:
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
            conn.execute(
                "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?)"
                " INSERT INTO t SELECT i, printf('%d-%s', i, hex(randomblob(24))) FROM g",
                (rows,),
            )
            conn.execute("CREATE TABLE u (id INTEGER)")
            conn.executemany("INSERT INTO u VALUES (?)", [(1,), (2,), (3,)])
        conn.close()
        return engine_for(url(name))

    def leftovers() -> list[str]:
        return sorted(p.name for p in [*dbs.iterdir(), *tmp.iterdir()] if "dbkeeper" in p.name)

    def kill_dump() -> None:
        raise Interrupted("the reader of the dump was stopped")

    def corrupt(data: bytes) -> bytes:
        half = len(data) // 2
        return data[:half] + bytes(4096) + data[half + 4096 :]  # zeroed pages: integrity_check fails

    return EngineCase(
        "sqlite",
        url,
        create,
        lambda name: Path(url(name)).exists(),
        leftovers,
        kill_dump,
        lambda data: data[: len(data) // 2],
        corrupt,
        SQLITE_TABLES,
        lambda name: name,
    )


def _postgres(cluster: Cluster, request: pytest.FixtureRequest, tmp_path: Path) -> EngineCase:
    monkeypatch = request.getfixturevalue("monkeypatch")
    tmp = _private_tempdir(tmp_path, monkeypatch)
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGOPTIONS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PGPASSWORD", cluster.env()["PGPASSWORD"])
    prefix = f"c{uuid.uuid4().hex[:8]}"  # this test's databases, and the temporaries named after them

    def drop_all() -> None:
        for db in cluster.psql(f"SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%'").split():
            cluster.drop_db(db)

    request.addfinalizer(drop_all)

    def url(name: str) -> str:
        return cluster.url(f"{prefix}_{name}")

    def create(name: str, rows: int) -> Engine:
        db = f"{prefix}_{name}"
        cluster.create_db(db)
        cluster.psql(
            "CREATE TABLE t (id integer PRIMARY KEY, payload text NOT NULL);"
            f" INSERT INTO t SELECT g, g || '-' || md5(g::text) FROM generate_series(1, {rows}) g;"
            " CREATE TABLE u (id integer); INSERT INTO u VALUES (1), (2), (3);",
            db=db,
        )
        return engine_for(url(name), pg_bin=str(cluster.bindir))

    def exists(name: str) -> bool:
        return cluster.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{prefix}_{name}'") == "1"

    def leftovers() -> list[str]:
        temporaries = cluster.psql(
            f"SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%dbkeeper%'"
            " UNION ALL SELECT 'session ' || application_name FROM pg_stat_activity"
            f" WHERE datname LIKE '{prefix}%' AND application_name LIKE 'dbkeeper%'"
        )
        return sorted([*temporaries.split(), *(p.name for p in tmp.iterdir())])

    def kill_dump() -> None:
        [pid] = _children("pg_dump")
        os.kill(pid, signal.SIGKILL)

    def truncate(data: bytes) -> bytes:
        return data[: data.rindex(TRAILER)]

    def corrupt(data: bytes) -> bytes:
        at = data.index(b"\n2\t")  # a row of t: its id is no longer an integer
        return data[:at] + b"\nnot-a-number\t" + data[at + 3 :]

    return EngineCase(
        f"pg{cluster.major}",
        url,
        create,
        exists,
        leftovers,
        kill_dump,
        truncate,
        corrupt,
        PG_TABLES,
        lambda name: f"{prefix}_{name}",
        pg_bin=str(cluster.bindir),
    )


def make_engine_case(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> EngineCase:
    if kind == "sqlite":
        return _sqlite(tmp_path, request.getfixturevalue("monkeypatch"))
    return _postgres(request.getfixturevalue(kind), request, tmp_path)
