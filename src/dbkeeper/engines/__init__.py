"""Engines: one module per database kind behind one interface.

An engine dumps a database to a byte stream, checks such a stream, and restores one into a target that only
becomes visible when the restore is whole. It knows nothing of stores, manifests on disk, or the CLI.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from dbkeeper.errors import UsageError


@dataclass(frozen=True)
class SourceInfo:
    """What a backup's manifest records about where it came from."""

    engine: str  # "postgresql" | "sqlite"
    database: str  # the name used in backup file names
    kind: str  # file-name kind: "sql" (plain dump) or "db" (SQLite file)
    dump_format: str  # "plain" | "sqlite"
    server_version: str | None = None
    dump_tool_version: str | None = None
    server_encoding: str | None = None
    source: dict[str, Any] = field(default_factory=dict)  # never a password
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceKey:
    """What identifies a source, without connecting to it: never a user name or a password.

    ``canonical`` is the same for every spelling of one database (``postgresql://host:port/db`` with the host in
    lower case and the port defaulted; ``sqlite:`` and the file's real path) and differs for any two databases,
    even with the same name. It keys the per-source lock and, in a store, a source's history when the config gives
    it no name. ``readable`` is the database name or the file's stem, for names a person reads.
    """

    readable: str
    canonical: str


@dataclass(frozen=True)
class RestoreOptions:
    drop_existing: bool = False
    no_owner: bool = False
    disable_triggers: bool = False
    jobs: int = 1  # sessions to load with, where the engine can (PostgreSQL plain dumps: up to 2)


class Dump(Protocol):
    """A running dump. Iterate ``chunks()`` to the end, then ``finish()`` checks it and returns row counts."""

    def chunks(self) -> Iterator[bytes]: ...
    def finish(self) -> dict[str, int]: ...


class DumpCheck(Protocol):
    """Checks a dump's raw bytes as they stream past (verify)."""

    def feed(self, chunk: bytes) -> None: ...
    def result(self) -> tuple[dict[str, int], list[str]]:
        """(row counts found in the dump, problems) once all bytes were fed."""
        ...

    def close(self) -> None: ...


class RestoreTarget(Protocol):
    """A restore in progress: load into a hidden temporary, count, then commit or discard."""

    description: str

    def load(self, chunks: Iterable[bytes], reopen: Callable[[], Iterator[bytes]] | None = None) -> None:
        """Load the dump; ``reopen`` gives a second, independent reader of the same bytes for engines that
        can load in parallel."""
        ...

    def row_counts(self, tables: Iterable[str]) -> dict[str, int]: ...
    def commit(self) -> None: ...
    def discard(self) -> None: ...


class Engine(Protocol):
    name: str

    def key(self) -> SourceKey:
        """What identifies this source (see SourceKey); computed without connecting."""
        ...

    def inspect(self) -> SourceInfo: ...
    def dump(self) -> AbstractContextManager[Dump]: ...
    def restore_target(self, manifest_info: dict[str, Any], options: RestoreOptions) -> RestoreTarget:
        """Check the target (exists? allowed?) and prepare a temporary; nothing visible changes yet."""
        ...

    def query(self, sql: str) -> Sequence[Sequence[str | None]]:
        """Run one SQL statement in this database; its rows as text (None for NULL where the engine tells)."""
        ...

    def drop(self) -> None:
        """Remove this database entirely. Only drills call it, on the scratch copy they restored themselves."""
        ...


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

        return PlainCheck()
    if engine == "postgresql" and dump_format == "custom":
        from dbkeeper.engines.pgarchive import ArchiveText
        from dbkeeper.engines.pgtools import pick

        return ArchiveText(pick("pg_restore", None).path)
    if engine == "sqlite":
        from dbkeeper.engines.sqlite import SqliteCheck

        return SqliteCheck()
    raise UsageError(f"no checker for {engine} backups in {dump_format} format")


def source_key(url: str, *, globals_only: bool = False) -> SourceKey:
    """The SourceKey of a source URL (the same as its engine's ``key()``)."""
    if is_sqlite(url):
        from dbkeeper.engines.sqlite import sqlite_key

        return sqlite_key(sqlite_path(url))
    if url.startswith(("postgresql://", "postgres://")):
        from dbkeeper.engines.postgres import PgConn, pg_key

        return pg_key(PgConn.from_url(url), globals_only=globals_only)
    raise UsageError(f"cannot tell what kind of database {redact(url)!r} is")


def redact(url: str) -> str:
    """A URL with any password replaced, fit for messages, logs and labels."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def sqlite_path(url: str) -> str:
    """SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute.db; a bare path as it is."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :] or ":memory:"
    if url.startswith("sqlite://"):
        raise UsageError(f"{url!r} has no path", "write sqlite:///relative.db or sqlite:////absolute.db")
    if url.startswith("sqlite:"):
        return url[len("sqlite:") :]
    return os.path.expanduser(url)
