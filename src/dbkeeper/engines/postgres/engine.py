"""PostgreSQL through its own client programs: ``pg_dump`` (plain SQL or a custom archive) to back up,
``pg_dumpall --globals-only`` for the server's roles and tablespaces, ``psql``/``pg_restore`` to restore (see
target.py), all of the server's major version or newer (clients.py).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace

from dbkeeper import proc
from dbkeeper.codec import read_chunks
from dbkeeper.engines.interface import DumpCheck, DumpSelection, RestoreOptions, RestoreSpec, SourceInfo, SourceKey
from dbkeeper.engines.postgres import dbprops
from dbkeeper.engines.postgres.archive import ArchiveText
from dbkeeper.engines.postgres.clients import Client, pick
from dbkeeper.engines.postgres.conn import PgConn, pg_key, quote_ident, quote_literal
from dbkeeper.engines.postgres.dumpformat import PlainCheck
from dbkeeper.engines.postgres.dumpopts import dump_arguments
from dbkeeper.engines.postgres.errors import classify
from dbkeeper.engines.postgres.into import PgIntoExisting
from dbkeeper.engines.postgres.leftovers import ASIDE_MARK, TEMP_MARK
from dbkeeper.engines.postgres.psql import query
from dbkeeper.engines.postgres.target import PgRestoreTarget
from dbkeeper.errors import DbkeeperError, SourceError, ToolError, UsageError


@dataclass(frozen=True)
class ServerInfo:
    version_num: int
    version: str
    encoding: str
    collate: str
    ctype: str
    size: int | None = None  # pg_database_size when asked: what a backup's progress measures against

    @property
    def major(self) -> int:
        return self.version_num // 10000 if self.version_num >= 100000 else self.version_num // 100


class PostgresEngine:
    name = "postgresql"

    def __init__(
        self,
        conn: PgConn,
        pg_bin: str | None = None,
        dump_format: str = "plain",
        selection: DumpSelection | None = None,
    ) -> None:
        if dump_format not in ("plain", "custom"):
            raise UsageError(f"unknown dump format {dump_format!r}", "use plain (the default) or custom")
        self.conn = conn
        self.pg_bin = pg_bin
        self.dump_format = dump_format
        self.selection = selection or None
        self._selection_argv = dump_arguments(self.selection)  # checked now, before anything connects
        self._server: ServerInfo | None = None

    def key(self) -> SourceKey:
        return pg_key(self.conn)

    def display(self) -> str:
        return self.conn.url()

    def scratch(self, name: str) -> PostgresEngine:
        return PostgresEngine(self.conn.with_db(name), pg_bin=self.pg_bin)

    # -- talking to the server ---------------------------------------------------------------------------
    def client(self, program: str) -> Client:
        major = self.server().major if program in ("pg_dump", "pg_dumpall") else None
        return pick(program, major, self.pg_bin)

    def query(self, sql: str, *, db: str | None = None, doing: str = "query") -> list[list[str]]:
        return query(self.conn.with_db(db) if db else self.conn, sql, pg_bin=self.pg_bin, doing=doing)

    def server(self) -> ServerInfo:
        if self._server is None:
            row = self.query(
                "SELECT current_setting('server_version_num'), current_setting('server_version'),"
                " pg_encoding_to_char(encoding), datcollate, datctype, pg_database_size(current_database())"
                " FROM pg_database WHERE datname = current_database()",
                doing=f"connecting to {self.conn.display()}",
            )[0]
            size = int(row[5]) if row[5] and row[5].isdigit() else None
            self._server = ServerInfo(int(row[0]), row[1].split()[0], row[2], row[3], row[4], size)
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
            size_estimate=server.size,
            extra={
                "lc_collate": server.collate,
                "lc_ctype": server.ctype,
                **dbprops.read(self.conn, self.conn.dbname, server.major, pg_bin=self.pg_bin).to_extra(),
                "roles": dbprops.role_names(self.conn, pg_bin=self.pg_bin),
            },
            selection=self.selection,
        )

    @contextmanager
    def dump(self) -> Iterator[PgDump]:
        argv = [self.client("pg_dump").path, "-w"]
        argv += ["--format=custom", "-Z", "0"] if self.dump_format == "custom" else ["--format=plain"]
        argv += self._selection_argv
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
    def restore_target(self, spec: RestoreSpec, options: RestoreOptions) -> PgRestoreTarget | PgIntoExisting:
        if options.into_existing:
            return PgIntoExisting(self.conn, spec, options, pg_bin=self.pg_bin)
        return PgRestoreTarget(self.conn, spec, options, pg_bin=self.pg_bin)

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


def server_databases(conn: PgConn, *, pg_bin: str | None = None) -> list[str]:
    """Every database of ``conn``'s server that a backup of the whole server takes: the ones that accept
    connections and are not templates (pg_back's choice), less what killed restores left (their temporary and
    renamed-aside databases, which ``dbkeeper cleanup`` deals with)."""
    rows = query(
        conn,
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname",
        pg_bin=pg_bin,
        doing=f"listing the databases at {conn.where}",
    )
    return [r[0] for r in rows if TEMP_MARK not in r[0] and ASIDE_MARK not in r[0]]


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
            selection=None,
            size_estimate=None,
        )

    @contextmanager
    def dump(self) -> Iterator[PgDump]:
        argv = [self.client("pg_dumpall").path, "-w", "--globals-only", "-l", self.conn.dbname]
        with proc.Process(argv, env=self.conn.env()) as child:
            yield PgDump(child, self.conn, "pg_dumpall")


class PgDump:
    """A running pg_dump (or pg_dumpall) whose output is checked as it streams: the plain text directly, a
    custom archive through pg_restore's text (archive.ArchiveText)."""

    def __init__(self, child: proc.Process, conn: PgConn, tool: str = "pg_dump", check: DumpCheck | None = None):
        self._child = child
        self._conn = conn
        self._tool = tool
        self._check = check or PlainCheck(statements=tool != "pg_dumpall", globals_file=tool == "pg_dumpall")

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
