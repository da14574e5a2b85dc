"""PostgreSQL through its own client programs: ``pg_dump`` (plain SQL) to back up, ``psql`` to restore.

Connection details travel to the children in the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE,
PGPASSWORD only when the URL carried one), never on the command line where ``ps`` would show them. Children run
with ``-w``: a missing password is an error that says where to put one, never a prompt that hangs a cron job.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from dbkeeper import proc
from dbkeeper.codec import read_chunks
from dbkeeper.engines import DumpCheck, RestoreOptions, SourceInfo, SourceKey, redact
from dbkeeper.engines.pgarchive import ArchiveText
from dbkeeper.engines.pgerrors import classify
from dbkeeper.engines.pgplain import PlainDumpScanner
from dbkeeper.engines.pgtools import Client, pick

if TYPE_CHECKING:
    from dbkeeper.engines.pgrestore import PgRestoreTarget

from dbkeeper.errors import (
    DbkeeperError,
    SourceError,
    ToolError,
    UsageError,
)

_PARAM_ENV = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "service": "PGSERVICE",
    "passfile": "PGPASSFILE",
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "dbname": "PGDATABASE",
    "application_name": "PGAPPNAME",
    "options": "PGOPTIONS",
}


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class PgConn:
    """Where a database is. ``password`` comes only from the URL and is never shown."""

    dbname: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_url(cls, url: str) -> PgConn:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError as exc:
            raise UsageError(f"bad port in {redact(url)}") from exc
        dbname = unquote(parts.path.lstrip("/"))
        params = dict(parse_qsl(parts.query))
        dbname = params.pop("dbname", dbname)
        unknown = sorted(set(params) - set(_PARAM_ENV))
        if unknown:
            raise UsageError(f"unknown connection parameter {unknown[0]!r} in {redact(url)}")
        if not dbname:
            raise UsageError(f"{redact(url)} names no database", "add it: postgresql://user@host:5432/DBNAME")
        return cls(
            dbname=dbname,
            host=unquote(parts.hostname) if parts.hostname else params.pop("host", None),
            port=port,
            user=unquote(parts.username) if parts.username else params.pop("user", None),
            password=unquote(parts.password) if parts.password is not None else None,
            params=tuple(sorted(params.items())),
        )

    def with_db(self, dbname: str) -> PgConn:
        return replace(self, dbname=dbname)

    def env(self) -> dict[str, str]:
        extra = {_PARAM_ENV[k]: v for k, v in self.params}
        extra["PGDATABASE"] = self.dbname
        extra.setdefault("PGAPPNAME", "dbkeeper")
        extra.setdefault("PGCONNECT_TIMEOUT", "10")
        if self.host:
            extra["PGHOST"] = self.host
        if self.port:
            extra["PGPORT"] = str(self.port)
        if self.user:
            extra["PGUSER"] = self.user
        if self.password is not None:
            extra["PGPASSWORD"] = self.password
        return proc.child_env(extra)

    @property
    def where(self) -> str:
        host = self.host or "local socket"
        return f"{host}:{self.port}" if self.port else host

    def display(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"postgresql://{user}{self.host or ''}{port}/{self.dbname}"


def pg_key(conn: PgConn, *, globals_only: bool = False) -> SourceKey:
    """Host (lower case; PGHOST or the local socket when none), port (PGPORT or 5432) and database: not the user,
    so two users backing up one database share one identity. The server's roles and tablespaces
    (``globals_only``) are a source of their own beside the database's."""
    host = (conn.host or os.environ.get("PGHOST") or "").lower()
    port = conn.port or os.environ.get("PGPORT") or 5432
    canonical = f"postgresql://{host}:{port}/{conn.dbname}"
    if globals_only:
        return SourceKey(f"{conn.dbname}.globals", canonical + "#globals")
    return SourceKey(conn.dbname, canonical)


@dataclass(frozen=True)
class ServerInfo:
    version_num: int
    version: str
    encoding: str
    collate: str
    ctype: str

    @property
    def major(self) -> int:
        return self.version_num // 10000 if self.version_num >= 100000 else self.version_num // 100


class PostgresEngine:
    name = "postgresql"

    def __init__(self, conn: PgConn, pg_bin: str | None = None, dump_format: str = "plain") -> None:
        if dump_format not in ("plain", "custom"):
            raise UsageError(f"unknown dump format {dump_format!r}", "use plain (the default) or custom")
        self.conn = conn
        self.pg_bin = pg_bin
        self.dump_format = dump_format
        self._server: ServerInfo | None = None

    def key(self) -> SourceKey:
        return pg_key(self.conn)

    # -- talking to the server ---------------------------------------------------------------------------
    def client(self, program: str) -> Client:
        major = self.server().major if program in ("pg_dump", "pg_dumpall") else None
        return pick(program, major, self.pg_bin)

    def _psql(self) -> Client:
        return pick("psql", None, self.pg_bin)

    def query(self, sql: str, *, db: str | None = None, doing: str = "query") -> list[list[str]]:
        conn = self.conn.with_db(db) if db else self.conn
        argv = [
            self._psql().path,
            "-X",
            "-w",
            "-q",
            "-A",
            "-t",
            "-F",
            "\x1f",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ]
        try:
            out = proc.run(argv, env=conn.env(), timeout=600)
        except ToolError as exc:
            raise classify(exc, conn, doing) from exc
        return [line.split("\x1f") for line in out.splitlines() if line]

    def server(self) -> ServerInfo:
        if self._server is None:
            row = self.query(
                "SELECT current_setting('server_version_num'), current_setting('server_version'),"
                " pg_encoding_to_char(encoding), datcollate, datctype"
                " FROM pg_database WHERE datname = current_database()",
                doing=f"connecting to {self.conn.display()}",
            )[0]
            self._server = ServerInfo(int(row[0]), row[1].split()[0], row[2], row[3], row[4])
        return self._server

    # -- backup ---------------------------------------------------------------------------------------
    def inspect(self) -> SourceInfo:
        server = self.server()
        dump_tool = self.client("pg_dump")
        return SourceInfo(
            engine=self.name,
            database=self.conn.dbname,
            kind="dump" if self.dump_format == "custom" else "sql",
            dump_format=self.dump_format,
            server_version=server.version,
            dump_tool_version=dump_tool.version,
            server_encoding=server.encoding,
            source={"host": self.conn.host, "port": self.conn.port, "user": self.conn.user},
            extra={"lc_collate": server.collate, "lc_ctype": server.ctype},
        )

    @contextmanager
    def dump(self) -> Iterator[PgDump]:
        argv = [self.client("pg_dump").path, "-w"]
        argv += ["--format=custom", "-Z", "0"] if self.dump_format == "custom" else ["--format=plain"]
        tag = f"dbkeeper-dump-{secrets.token_hex(4)}"
        env = {**self.conn.env(), "PGAPPNAME": tag}
        try:
            with proc.Process(argv, env=env) as child:
                check = (
                    ArchiveText(pick("pg_restore", None, self.pg_bin).path) if self.dump_format == "custom" else None
                )
                try:
                    yield PgDump(child, self.conn, check=check)
                finally:
                    if check:
                        check.close()
        except BaseException:
            self._end_sessions(tag)
            raise

    def _end_sessions(self, tag: str) -> None:
        """After a dump was stopped: end its server session too (one waiting on a lock outlives its client)."""
        # Best effort: otherwise the server ends the session itself once it notices the client is gone.
        with suppress(DbkeeperError):
            self.query(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = {quote_literal(tag)}",
                doing="ending the stopped dump's session",
            )

    # -- restore --------------------------------------------------------------------------------------
    def restore_target(self, manifest_info: dict[str, Any], options: RestoreOptions) -> PgRestoreTarget:
        from dbkeeper.engines.pgrestore import PgRestoreTarget

        return PgRestoreTarget(self, manifest_info, options)

    def drop(self) -> None:
        """End the database's sessions and DROP it, from a maintenance database.

        A client killed mid-query (a drill interrupted during a smoke query) leaves its server session running
        until the query ends, and a session that just ended may take a moment to go: end them, then retry.
        """
        name = self.conn.dbname
        end = (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = {quote_literal(name)} AND pid <> pg_backend_pid()"
        )
        sql = f"DROP DATABASE IF EXISTS {quote_ident(name)}"
        for admin in ("postgres", "template1"):
            for attempt in range(50):
                try:
                    self.query(end, db=admin, doing=f"ending the sessions on {name}")
                    self.query(sql, db=admin, doing=f"dropping {name}")
                    return
                except SourceError as exc:
                    if admin == "postgres" and f"database {admin} does not exist" in exc.message:
                        break
                    raise
                except DbkeeperError as exc:
                    if "being accessed by other users" not in str(getattr(exc, "stderr", "")) or attempt == 49:
                        raise
                    threading.Event().wait(0.1)


class PostgresGlobals(PostgresEngine):
    """The server's roles and tablespaces (``pg_dumpall --globals-only``), kept beside a database's backups as
    ``<db>.globals_<stamp>.sql.gz``: what a restore onto a new server needs first, and what pg_dump leaves out."""

    def key(self) -> SourceKey:
        return pg_key(self.conn, globals_only=True)

    def inspect(self) -> SourceInfo:
        base = super().inspect()
        return replace(
            base,
            database=f"{self.conn.dbname}.globals",
            dump_format="globals",
            dump_tool_version=self.client("pg_dumpall").version,
            extra={},
        )

    @contextmanager
    def dump(self) -> Iterator[PgDump]:
        argv = [self.client("pg_dumpall").path, "-w", "--globals-only", "-l", self.conn.dbname]
        with proc.Process(argv, env=self.conn.env()) as child:
            yield PgDump(child, self.conn, "pg_dumpall")


class PgDump:
    """A running pg_dump (or pg_dumpall) whose output is checked as it streams: the plain text directly, a
    custom archive through pg_restore's text (pgarchive.ArchiveText)."""

    def __init__(self, child: proc.Process, conn: PgConn, tool: str = "pg_dump", check: DumpCheck | None = None):
        self._child = child
        self._conn = conn
        self._tool = tool
        self._check = check or PlainCheck()

    def chunks(self) -> Iterator[bytes]:
        feed = self._check.feed
        for chunk in read_chunks(self._child.stdout):
            feed(chunk)
            yield chunk

    def finish(self) -> dict[str, int]:
        try:
            self._child.check()
        except ToolError as exc:
            self._check.close()
            raise classify(exc, self._conn, f"{self._tool} of {self._conn.dbname}") from exc
        counts, problems = self._check.result()
        if problems:
            raise ToolError(f"{self._tool} of {self._conn.dbname} exited 0 but {problems[0]}")
        return counts


class PlainCheck:
    def __init__(self) -> None:
        self._scanner = PlainDumpScanner()

    def feed(self, chunk: bytes) -> None:
        self._scanner.feed(chunk)

    def result(self) -> tuple[dict[str, int], list[str]]:
        return dict(self._scanner.row_counts), self._scanner.problems()

    def close(self) -> None:
        pass
