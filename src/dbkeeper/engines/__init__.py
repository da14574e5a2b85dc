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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dbkeeper.engines.interface import (
    Dump,
    DumpCheck,
    DumpSelection,
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
    "DumpSelection",
    "Engine",
    "RestoreOptions",
    "RestoreSpec",
    "RestoreTarget",
    "SourceInfo",
    "SourceKey",
    "check_for",
    "check_place",
    "engine_for",
    "is_postgres",
    "is_sqlite",
    "pg_url",
    "qualified_name",
    "redact",
    "redact_text",
    "scratch_for",
    "server_connection",
    "server_url",
    "source_key",
    "sqlite_path",
]


def is_sqlite(url: str) -> bool:
    if is_postgres(url):
        return False
    return url.startswith("sqlite:") or url.lower().endswith((".db", ".sqlite", ".sqlite3"))


def is_postgres(spec: str) -> bool:
    """A PostgreSQL URL (postgresql://, postgres://) or a libpq connection string (``host=db1 dbname=casino``)."""
    from dbkeeper.engines.postgres.conn import is_conninfo

    return spec.startswith(("postgresql://", "postgres://")) or is_conninfo(spec)


def server_url(host: str | None, port: str | None, user: str | None, db: str | None, *, server: bool = False) -> str:
    """The URL that pg_dump's ``-h/-p/-U/-d`` name, each missing part left to libpq's PG* environment (PGHOST,
    PGPORT, PGUSER; PGPASSWORD or ~/.pgpass for the password); the database from ``-d``, else PGDATABASE, else
    ``postgres`` for a ``server`` (a whole server, or where roles go). ``-d`` may be a URL or a connection string,
    as for psql."""
    if db and (is_postgres(db)) and not (host or port or user):
        return pg_url(db)
    db = db or os.environ.get("PGDATABASE") or ("postgres" if server else None)
    if not db:
        raise UsageError("no database named", "pass -d DBNAME (or a URL), or set PGDATABASE")
    from urllib.parse import quote

    auth = f"{quote(user, safe='')}@" if user else ""
    where = quote(host, safe="") if host and "/" in host else (host or "")
    return f"postgresql://{auth}{where}{':' + str(port) if port else ''}/{quote(db, safe='')}"


def pg_url(spec: str) -> str:
    """``spec`` with a libpq connection string turned into the postgresql:// URL it means; anything else as it is.
    Every place that takes a PostgreSQL URL takes a connection string through this."""
    from dbkeeper.engines.postgres.conn import conninfo_url, is_conninfo

    return conninfo_url(spec) if is_conninfo(spec) else spec


def engine_for(
    url: str,
    *,
    pg_bin: str | None = None,
    name: str | None = None,
    globals_only: bool = False,
    dump_format: str = "plain",
    selection: DumpSelection | None = None,
) -> Engine:
    """The engine for a source or target URL (see DESIGN.md "Words"); ``globals_only``: the PostgreSQL server's
    roles and tablespaces instead of the database; ``selection``: part of a PostgreSQL database (pg_dump's
    -t/-T/-n/-N/--exclude-table-data and allowed options)."""
    url = pg_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        from dbkeeper.engines.postgres import PgConn, PostgresEngine, PostgresGlobals

        if globals_only:
            return PostgresGlobals(PgConn.from_url(url), pg_bin=pg_bin)
        return PostgresEngine(PgConn.from_url(url), pg_bin=pg_bin, dump_format=dump_format, selection=selection)
    if is_sqlite(url):
        from dbkeeper.engines.sqlite import SqliteEngine

        if dump_format != "plain":
            raise UsageError(f"--format {dump_format} is for PostgreSQL; a SQLite backup is the database file")
        if selection:
            raise UsageError("--table, --schema and --pg-dump-option are for PostgreSQL; SQLite is backed up whole")
        return SqliteEngine(sqlite_path(url), name=name)
    raise UsageError(
        f"cannot tell what kind of database {url!r} is",
        "use postgresql://user@host:port/db, sqlite:///relative.db, sqlite:////absolute.db or a path ending .db",
    )


def check_for(engine: str, dump_format: str) -> DumpCheck:
    """A streaming checker for the raw (decompressed) bytes of a backup made by ``engine``."""
    if engine == "postgresql" and dump_format in ("plain", "globals"):
        from dbkeeper.engines.postgres import PlainCheck

        return PlainCheck(statements=dump_format == "plain", globals_file=dump_format == "globals")
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
    near = pg_url(near) if near else near
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


def check_place(near: str) -> None:
    """Refuse, as a usage error, a place for a scratch database (``drill --target``) that ``scratch_for`` could not
    use: a malformed PostgreSQL URL, a ``sqlite://`` URL without a path, or a URL of any other kind. Checked
    before anything is read, so a typo is reported as one and not after a backup was chosen."""
    if near.startswith(("postgresql://", "postgres://")):
        from dbkeeper.engines.postgres import PgConn

        PgConn.from_url(near, dbname="postgres")
    elif near.startswith("sqlite:"):
        sqlite_path(near)
    elif "://" in near:
        raise UsageError(
            f"cannot tell what kind of place {redact(near)!r} is",
            "write postgresql://user@host:port for a PostgreSQL server, or a directory for SQLite",
        )


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

    return find(PgConn.from_url(pg_url(url), dbname="postgres"), pg_bin=pg_bin)


def drop_server_leftover(url: str, leftover: ServerLeftover, *, pg_bin: str | None = None) -> None:
    """Drop a temporary database ``server_leftovers`` found (never a database renamed aside)."""
    from dbkeeper.engines.postgres.conn import PgConn
    from dbkeeper.engines.postgres.leftovers import drop

    drop(PgConn.from_url(pg_url(url), dbname="postgres"), leftover, pg_bin=pg_bin)


def server_databases(url: str, *, pg_bin: str | None = None) -> list[tuple[str, str]]:
    """The databases a whole-server backup of the PostgreSQL server at ``url`` takes (connectable, not templates),
    each with its URL (``url`` naming that database: the same user, password and parameters). ``url`` may name a
    database to connect through, else ``postgres``."""
    from dbkeeper.engines.postgres.conn import PgConn, with_database
    from dbkeeper.engines.postgres.engine import server_databases as listed

    url = pg_url(url)
    if not is_postgres(url):
        raise UsageError(f"--all takes a PostgreSQL server, not {redact(url)!r}", "write postgresql://user@host:5432")
    conn = PgConn.from_url(url) if _names_db(url) else PgConn.from_url(url, dbname="postgres")
    return [(name, with_database(url, name)) for name in listed(conn, pg_bin=pg_bin)]


def qualified_name(text: str) -> tuple[str | None, str]:
    """``schema.table`` as SQL spells it (quotes and all) into its unquoted parts; the schema None when not given.
    ValueError for anything else."""
    from dbkeeper.engines.postgres.dumpselect import parse_qualified

    return parse_qualified(text)


def server_connection(url: str) -> str:
    """A PostgreSQL server's URL naming a database to connect through: its own, else ``postgres``."""
    from dbkeeper.engines.postgres.conn import with_database

    url = pg_url(url)
    return url if _names_db(url) else with_database(url, "postgres")


def _names_db(url: str) -> bool:
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    return bool(parts.path.strip("/")) or any(k == "dbname" for k, _ in parse_qsl(parts.query))


@dataclass(frozen=True)
class GlobalsApplied:
    """What ``apply_globals`` did on the server ``target`` (its URL for people)."""

    target: str
    created_roles: list[str]
    existing_roles: list[str]
    created_tablespaces: list[str]
    existing_tablespaces: list[str]


def apply_globals(
    url: str, data: bytes, *, allow_no_password: bool = False, allow_superuser: bool = False, pg_bin: str | None = None
) -> GlobalsApplied:
    """Create the roles and tablespaces of a ``pg_dumpall --globals-only`` file that the PostgreSQL server at
    ``url`` lacks; never changes or drops what is there (engines/postgres/globals.py). ``url`` may name a
    database to connect through, else ``postgres``."""
    from dbkeeper.engines.postgres.conn import PgConn
    from dbkeeper.engines.postgres.globals import apply

    url = pg_url(url)
    if not is_postgres(url):
        raise UsageError(f"roles and tablespaces go onto a PostgreSQL server, not {redact(url)!r}")
    conn = PgConn.from_url(url) if _names_db(url) else PgConn.from_url(url, dbname="postgres")
    done = apply(conn, data, allow_no_password=allow_no_password, allow_superuser=allow_superuser, pg_bin=pg_bin)
    where = conn.display().rsplit("/", 1)[0]
    return GlobalsApplied(
        where, done.created_roles, done.existing_roles, done.created_tablespaces, done.existing_tablespaces
    )


def server_key(url: str) -> str:
    """What identifies the PostgreSQL server of ``url`` (host and port, as in its SourceKey)."""
    from dbkeeper.engines.postgres.conn import PgConn, pg_key

    return pg_key(PgConn.from_url(pg_url(url), dbname="postgres")).canonical.rsplit("/", 1)[0]


def source_key(url: str, *, globals_only: bool = False) -> SourceKey:
    """The SourceKey of a source URL (the same as its engine's ``key()``)."""
    url = pg_url(url)
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
