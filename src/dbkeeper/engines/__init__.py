"""Engines: one module per database kind behind one interface.

An engine dumps a database to a byte stream, checks such a stream, and restores one into a target that only
becomes visible when the restore is whole. It knows nothing of stores, manifests on disk, or the CLI.

Everything that depends on the kind of database is asked of an engine: its identity (``key``, for locks), its
name for people (``display``), a scratch database beside it (``scratch``; ``scratch_for`` places a drill's), the
checker of its dumps (``check_for``) and the restore target (``restore_target`` from a typed ``RestoreSpec``).
The interface is in ``interface.py``; ``postgres/`` and ``sqlite.py`` implement it; this module picks one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dbkeeper.engines.interface import (
    Dump,
    DumpCheck,
    Engine,
    RestoreOptions,
    RestoreSpec,
    RestoreTarget,
    SourceInfo,
    SourceKey,
    redact,
    redact_text,
)
from dbkeeper.errors import UsageError

if TYPE_CHECKING:
    from dbkeeper.engines.postgres.leftovers import ServerLeftover

__all__ = [
    "Dump",
    "DumpCheck",
    "Engine",
    "RestoreOptions",
    "RestoreSpec",
    "RestoreTarget",
    "SourceInfo",
    "SourceKey",
    "check_for",
    "engine_for",
    "is_sqlite",
    "redact",
    "redact_text",
    "scratch_for",
    "source_key",
    "sqlite_path",
]


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:") or url.lower().endswith((".db", ".sqlite", ".sqlite3"))


def engine_for(
    url: str,
    *,
    pg_bin: str | None = None,
    name: str | None = None,
    globals_only: bool = False,
    dump_format: str = "plain",
) -> Engine:
    """The engine for a source or target URL (see DESIGN.md "Words"); ``globals_only``: the PostgreSQL server's
    roles and tablespaces instead of the database."""
    if url.startswith(("postgresql://", "postgres://")):
        from dbkeeper.engines.postgres import PgConn, PostgresEngine, PostgresGlobals

        if globals_only:
            return PostgresGlobals(PgConn.from_url(url), pg_bin=pg_bin)
        return PostgresEngine(PgConn.from_url(url), pg_bin=pg_bin, dump_format=dump_format)
    if is_sqlite(url):
        from dbkeeper.engines.sqlite import SqliteEngine

        if dump_format != "plain":
            raise UsageError(f"--format {dump_format} is for PostgreSQL; a SQLite backup is the database file")
        return SqliteEngine(sqlite_path(url), name=name)
    raise UsageError(
        f"cannot tell what kind of database {url!r} is",
        "use postgresql://user@host:port/db, sqlite:///relative.db, sqlite:////absolute.db or a path ending .db",
    )


def check_for(engine: str, dump_format: str) -> DumpCheck:
    """A streaming checker for the raw (decompressed) bytes of a backup made by ``engine``."""
    if engine == "postgresql" and dump_format in ("plain", "globals"):
        from dbkeeper.engines.postgres import PlainCheck

        return PlainCheck(statements=dump_format == "plain")
    if engine == "postgresql" and dump_format == "custom":
        from dbkeeper.engines.postgres.archive import ArchiveText
        from dbkeeper.engines.postgres.clients import pick

        return ArchiveText(pick("pg_restore", None).path)
    if engine == "sqlite":
        from dbkeeper.engines.sqlite import SqliteCheck

        return SqliteCheck()
    raise UsageError(f"no checker for {engine} backups in {dump_format} format")


def scratch_for(kind: str, name: str, *, near: str | None = None, pg_bin: str | None = None) -> Engine | None:
    """The engine of a new database ``name`` of ``kind`` (a drill's scratch copy of a backup); nothing is created.

    Where it goes: ``near`` when it is a place for ``kind``: for PostgreSQL a server URL (its database part, if
    any, is replaced by ``name``), for SQLite a directory, or a database path or URL whose directory is used.
    Without one, SQLite's is None (the caller names a directory of its own) and PostgreSQL's is refused: never
    the server a manifest names, since whoever can write the store can write a manifest (a password would go
    there, and the restore would run there).
    """
    postgres = bool(near and near.startswith(("postgresql://", "postgres://")))
    if kind == "postgresql":
        from dbkeeper.engines.postgres import PgConn, PostgresEngine

        if near and postgres:
            return PostgresEngine(PgConn.from_url(near, dbname=name), pg_bin=pg_bin)
        raise UsageError(
            "no PostgreSQL server to drill on: dbkeeper never connects to a server named by a file in the store",
            "name the source in dbkeeper.toml ([[sources]], its server is used), or pass --target"
            " postgresql://user@host:port (config [drill] target)",
        )
    if kind == "sqlite":
        from dbkeeper.engines.sqlite import SqliteEngine

        if not near or postgres:
            return None
        path = Path(sqlite_path(near))
        if is_sqlite(near) and not path.is_dir():
            return SqliteEngine(str(path)).scratch(name)
        return SqliteEngine(str(path / f"{name}.db"))
    raise UsageError(f"no scratch database for {kind} backups")


def sandbox_for(
    kind: str, name: str, *, version: str | None, roles: object = (), pg_bin: str | None = None
) -> tuple[Engine, Callable[[], None], str]:
    """A new database ``name`` in a throwaway cluster of its own (engines/postgres/sandbox.py), for a backup of
    server ``version``: its engine, what stops and removes the cluster, and where it is for people. ``roles`` (read
    from a manifest: untrusted, so only names are taken) are created in it. UsageError for a kind without one."""
    if kind != "postgresql":
        raise UsageError(f"no sandbox for {kind} backups")
    from dbkeeper.engines.postgres import PostgresEngine
    from dbkeeper.engines.postgres.sandbox import Sandbox

    major = int(version.split(".")[0]) if version and version.split(".")[0].isdigit() else 0
    box = Sandbox.start(major, pg_bin=pg_bin)
    try:
        names = [r for r in roles if isinstance(r, str) and 0 < len(r) < 64] if isinstance(roles, list) else []
        box.create_roles(names[:10_000])
    except BaseException:
        box.stop()
        raise
    return PostgresEngine(box.conn(name), pg_bin=pg_bin), box.stop, box.describe()


def server_leftovers(url: str, *, pg_bin: str | None = None) -> list[ServerLeftover]:
    """What interrupted restores left on the PostgreSQL server of ``url`` (a database URL, or the server's alone:
    ``postgresql://user@host:port``); see engines/postgres/leftovers.py."""
    from dbkeeper.engines.postgres.conn import PgConn
    from dbkeeper.engines.postgres.leftovers import find

    return find(PgConn.from_url(url, dbname="postgres"), pg_bin=pg_bin)


def drop_server_leftover(url: str, leftover: ServerLeftover, *, pg_bin: str | None = None) -> None:
    """Drop a temporary database ``server_leftovers`` found (never a database renamed aside)."""
    from dbkeeper.engines.postgres.conn import PgConn
    from dbkeeper.engines.postgres.leftovers import drop

    drop(PgConn.from_url(url, dbname="postgres"), leftover, pg_bin=pg_bin)


def server_key(url: str) -> str:
    """What identifies the PostgreSQL server of ``url`` (host and port, as in its SourceKey)."""
    from dbkeeper.engines.postgres.conn import PgConn, pg_key

    return pg_key(PgConn.from_url(url, dbname="postgres")).canonical.rsplit("/", 1)[0]


def source_key(url: str, *, globals_only: bool = False) -> SourceKey:
    """The SourceKey of a source URL (the same as its engine's ``key()``)."""
    if is_sqlite(url):
        from dbkeeper.engines.sqlite import sqlite_key

        return sqlite_key(sqlite_path(url))
    if url.startswith(("postgresql://", "postgres://")):
        from dbkeeper.engines.postgres import PgConn, pg_key

        return pg_key(PgConn.from_url(url), globals_only=globals_only)
    raise UsageError(f"cannot tell what kind of database {redact(url)!r} is")


def sqlite_path(url: str) -> str:
    """SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute.db; a bare path as it is."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :] or ":memory:"
    if url.startswith("sqlite://"):
        raise UsageError(f"{url!r} has no path", "write sqlite:///relative.db or sqlite:////absolute.db")
    if url.startswith("sqlite:"):
        return url[len("sqlite:") :]
    return os.path.expanduser(url)
