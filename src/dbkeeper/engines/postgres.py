"""PostgreSQL through its own client programs: ``pg_dump`` (plain SQL) to back up, ``psql`` to restore.

Connection details travel to the children in the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE,
PGPASSWORD only when the URL carried one), never on the command line where ``ps`` would show them. Children run
with ``-w``: a missing password is an error that says where to put one, never a prompt that hangs a cron job.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from dbkeeper import proc
from dbkeeper.codec import CHUNK
from dbkeeper.engines import DumpCheck, RestoreOptions, SourceInfo, pgparallel, redact
from dbkeeper.engines.pgarchive import ArchiveText
from dbkeeper.engines.pgplain import PlainDumpScanner, drop_owner_statements
from dbkeeper.engines.pgtools import Client, pick
from dbkeeper.errors import (
    DbkeeperError,
    NoSpace,
    RestoreError,
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


# The runbook's error table: what libpq, pg_dump and psql say, what it means, what to do.
_CAUSES: list[tuple[str, type[DbkeeperError], str, str]] = [
    (
        r"password authentication failed|authentication failed for user",
        SourceError,
        "authentication failed for {user} at {where}",
        "check the password in PGPASSWORD or ~/.pgpass (mode 0600: host:port:db:user:password)",
    ),
    (
        r"no password supplied|fe_sendauth",
        SourceError,
        "the server at {where} wants a password and none was given",
        "put it in ~/.pgpass (mode 0600) or PGPASSWORD; dbkeeper never prompts",
    ),
    (
        r"could not translate host name|Name or service not known|nodename nor servname",
        SourceError,
        "unknown host {where}",
        "check the host name in the URL or PGHOST",
    ),
    (
        r"Connection refused|could not connect to server|connection to server .* failed: (?!FATAL)"
        r"|timeout expired|No route to host",
        SourceError,
        "cannot reach PostgreSQL at {where}",
        "check that the server runs, the host and port (5432?), and listen_addresses / firewall",
    ),
    (
        r"database \"[^\"]+\" does not exist",
        SourceError,
        "database {db} does not exist at {where}",
        "check the name; `psql -l` lists the databases",
    ),
    (
        r"no pg_hba.conf entry",
        SourceError,
        "the server at {where} does not allow {user} to connect from here",
        "add a pg_hba.conf line for this host and user, then reload the server",
    ),
    (
        r"server version mismatch",
        ToolError,
        "pg_dump is older than the server at {where}",
        "install the client of the server's major version or pass --pg-bin DIR",
    ),
    (
        r"No space left on device|could not extend file|disk full",
        NoSpace,
        "the disk filled up",
        "free space (on the server for a restore, on the store for a backup) and retry",
    ),
    (
        r"violates foreign key constraint",
        RestoreError,
        "a row refers to one that is not there yet (foreign key order)",
        "restore a full dump (constraints come after the data), or pass --disable-triggers (needs superuser)",
    ),
    (
        r"invalid byte sequence for encoding|has no equivalent in encoding|character with byte sequence",
        RestoreError,
        "the data does not fit the target database's encoding",
        "restore into a database with the source's encoding (dbkeeper creates it with the manifest's)",
    ),
    (
        r"role \"[^\"]+\" does not exist",
        RestoreError,
        "the dump names a role the target server lacks",
        "create the role (restore the globals backup first) or pass --no-owner",
    ),
    (
        r"permission denied to create database|must be owner|permission denied",
        RestoreError,
        "permission denied for {user} at {where}",
        "use a role with CREATEDB (and ownership of the target to replace it), or a superuser",
    ),
    (
        r"permission denied to set parameter \"session_replication_role\"",
        RestoreError,
        "--disable-triggers needs a superuser",
        "restore as a superuser, or without --disable-triggers",
    ),
]


def classify(exc: ToolError, conn: PgConn, doing: str) -> DbkeeperError:
    """Turn a failed client's stderr into the runbook's message and fix; unknown causes keep the quote."""
    text = exc.stderr or exc.message
    for pattern, kind, message, hint in sorted(_CAUSES, key=lambda c: "session_replication_role" not in c[0]):
        if re.search(pattern, text, re.IGNORECASE):
            what = message.format(user=conn.user or "the user", where=conn.where, db=conn.dbname)
            detail = _first_error_line(text)
            return kind(f"{doing}: {what}" + (f" ({detail})" if detail else ""), hint)
    detail = _first_error_line(text)
    quoted = f" ({detail})" if detail and detail not in exc.message else ""
    return type(exc)(f"{doing}: {exc.message}{quoted}", exc.hint, exc.stderr)


def _first_error_line(stderr: str) -> str:
    for line in stderr.splitlines():
        line = line.strip()
        if re.search(r"\b(ERROR|FATAL|error):", line):
            return re.sub(r"^.*?\b(ERROR|FATAL|error):\s*", "", line)[:300]
    return ""


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
        read = self._child.stdout.read
        feed = self._check.feed
        while chunk := read(CHUNK):
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


class PgRestoreTarget:
    """Restore into a temporary database on the target server, then rename it into place.

    The target name is never absent for longer than two renames, and never half-restored: the old database is
    renamed aside, the new one renamed in, and only then is the old one dropped. Any failure before that
    drops the temporary database and leaves the target as it was.
    """

    def __init__(self, engine: PostgresEngine, info: dict[str, Any], options: RestoreOptions) -> None:
        self.engine = engine
        self.options = options
        self.info = info
        self.target = engine.conn.dbname
        self.description = engine.conn.display()
        self._admin_db = "postgres"
        token = secrets.token_hex(4)
        self.temp = f"{self.target[:40]}_dbkeeper_tmp_{token}"
        self._aside = f"{self.target[:40]}_dbkeeper_old_{token}"
        self._created = False
        self.existed = self._exists(self.target)
        if self.existed and not options.drop_existing:
            raise RestoreError(
                f"database {self.target} already exists at {engine.conn.where}",
                "restore to a new name, or pass --drop-existing to replace it",
            )
        self._create_temp()

    def _q(self, sql: str, doing: str) -> list[list[str]]:
        return self.engine.query(sql, db=self._admin_db, doing=doing)

    def _exists(self, name: str) -> bool:
        try:
            rows = self._q(f"SELECT 1 FROM pg_database WHERE datname = {quote_literal(name)}", "checking the target")
        except SourceError as exc:
            if "does not exist" not in exc.message:
                raise
            self._admin_db = "template1"
            rows = self._q(f"SELECT 1 FROM pg_database WHERE datname = {quote_literal(name)}", "checking the target")
        return bool(rows)

    def _create_temp(self) -> None:
        encoding = self.info.get("server_encoding") or "UTF8"
        extra = self.info.get("extra") or {}
        base = f"CREATE DATABASE {quote_ident(self.temp)} TEMPLATE template0 ENCODING {quote_literal(encoding)}"
        attempts = []
        if extra.get("lc_collate") and extra.get("lc_ctype"):
            attempts.append(
                f"{base} LC_COLLATE {quote_literal(extra['lc_collate'])} LC_CTYPE {quote_literal(extra['lc_ctype'])}"
            )
        attempts += [base, f"{base} LC_COLLATE 'C' LC_CTYPE 'C'"]
        last: DbkeeperError | None = None
        for sql in attempts:
            try:
                self._q(sql, f"creating the temporary database {self.temp}")
            except DbkeeperError as exc:
                if "permission denied" in exc.message.lower() or "permission" in (exc.hint or ""):
                    raise
                last = exc
                continue
            self._created = True
            return
        assert last is not None
        raise last

    def load(self, chunks: Iterable[bytes], reopen: Callable[[], Iterator[bytes]] | None = None) -> None:
        """Load the dump into the temporary database: over two sessions when ``reopen`` gives a second reader
        of the same backup and ``jobs`` > 1 (see pgparallel), else in one."""
        conn = self.engine.conn.with_db(self.temp)
        env = conn.env()
        if self.options.disable_triggers:
            env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " -c session_replication_role=replica").strip()
        argv = [self.engine._psql().path, "-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]

        def on_error(exc: ToolError) -> DbkeeperError:
            return classify(exc, conn, f"restoring into {self.target}")

        def new_session() -> pgparallel.Session:
            return pgparallel.Session(argv, env, on_error)

        if self.info.get("dump_format") == "custom":
            self._pg_restore(chunks, env, on_error)
            return
        owner_filter = drop_owner_statements if self.options.no_owner else (lambda c: iter(c))
        weights = self.info.get("row_counts") or {}
        if reopen is not None and self.options.jobs > 1 and len(weights) > 1:
            pgparallel.load(owner_filter(chunks), lambda: owner_filter(reopen()), weights, new_session)
            return
        session = new_session()
        try:
            for chunk in owner_filter(chunks):
                session.write(chunk)
        except BaseException:
            session.kill()
            raise
        session.close()

    def _pg_restore(
        self, chunks: Iterable[bytes], env: dict[str, str], on_error: Callable[[ToolError], DbkeeperError]
    ) -> None:
        """A custom archive: spooled to a private temporary file (pg_restore seeks to work in parallel), then
        ``pg_restore --jobs N --exit-on-error`` into the temporary database."""
        with tempfile.TemporaryDirectory(prefix="dbkeeper-archive-") as workdir:
            archive = os.path.join(workdir, "archive.dump")
            try:
                with open(archive, "wb") as f:
                    for chunk in chunks:
                        f.write(chunk)
            except OSError as exc:
                raise NoSpace(
                    f"cannot spool the archive to {workdir}: {exc.strerror}",
                    "free space there or point TMPDIR at a larger disk",
                ) from exc
            argv = [pick("pg_restore", None, self.engine.pg_bin).path, "-w", "--exit-on-error"]
            argv += ["--jobs", str(max(self.options.jobs, 1)), "--dbname", self.temp]
            if self.options.no_owner:
                argv.append("--no-owner")
            try:
                proc.run([*argv, archive], env=env, timeout=None)
            except ToolError as exc:
                raise on_error(exc) from exc

    def row_counts(self, tables: Iterable[str]) -> dict[str, int]:
        names = list(tables)
        counts: dict[str, int] = {}
        for start in range(0, len(names), 200):
            batch = names[start : start + 200]
            sql = " UNION ALL ".join(f"SELECT {quote_literal(name)}, count(*) FROM ONLY {name}" for name in batch)
            for row in self.engine.query(sql, db=self.temp, doing="counting restored rows"):
                counts[row[0]] = int(row[1])
        return counts

    def commit(self) -> None:
        t, tmp, aside = quote_ident(self.target), quote_ident(self.temp), quote_ident(self.aside)
        if self.existed:
            self._q(f"ALTER DATABASE {t} WITH ALLOW_CONNECTIONS false", f"locking {self.target}")
            try:
                self._q(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    f" WHERE datname = {quote_literal(self.target)} AND pid <> pg_backend_pid()",
                    f"ending sessions on {self.target}",
                )
                self._rename_when_free(t, aside)
            except BaseException:
                self._q(f"ALTER DATABASE {t} WITH ALLOW_CONNECTIONS true", f"unlocking {self.target}")
                raise
        try:
            self._q(f"ALTER DATABASE {tmp} RENAME TO {t}", f"renaming the restored database to {self.target}")
        except BaseException:
            if self.existed:
                self._q(f"ALTER DATABASE {aside} RENAME TO {t}", f"putting {self.target} back")
                self._q(f"ALTER DATABASE {t} WITH ALLOW_CONNECTIONS true", f"unlocking {self.target}")
            raise
        self._created = False
        if self.existed:
            self._q(f"DROP DATABASE {aside}", f"dropping the replaced database (now {self.aside})")

    @property
    def aside(self) -> str:
        return self._aside

    def _rename_when_free(self, t: str, aside: str) -> None:
        """Rename the target aside; a session that was just ended may take a moment to go."""
        for attempt in range(50):
            try:
                self._q(f"ALTER DATABASE {t} RENAME TO {aside}", f"moving {self.target} aside")
                return
            except DbkeeperError as exc:
                if "being accessed by other users" not in (exc.message + str(getattr(exc, "stderr", ""))):
                    raise
                if attempt == 49:
                    raise
                threading.Event().wait(0.1)

    def discard(self) -> None:
        if self._created:
            try:
                self._q(f"DROP DATABASE IF EXISTS {quote_ident(self.temp)}", f"dropping {self.temp}")
            finally:
                self._created = False
