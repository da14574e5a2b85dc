"""Restoring into PostgreSQL: a temporary database on the target server, renamed into place when whole."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from dbkeeper.engines.interface import RestoreOptions, RestoreSpec
from dbkeeper.engines.postgres import dbprops
from dbkeeper.engines.postgres.archive import load_archive
from dbkeeper.engines.postgres.clients import pick
from dbkeeper.engines.postgres.conn import PgConn, quote_ident, quote_literal
from dbkeeper.engines.postgres.dumpselect import Selection, select
from dbkeeper.engines.postgres.errors import classify
from dbkeeper.engines.postgres.leftovers import ASIDE_MARK, TEMP_MARK
from dbkeeper.engines.postgres.load import load_plain
from dbkeeper.engines.postgres.psql import query
from dbkeeper.errors import DbkeeperError, RestoreError, SourceError, ToolError
from dbkeeper.proc import signals_held


def selection_of(options: RestoreOptions) -> Selection | None:
    """The part of a backup ``restore --table/--schema`` asks for; None for all of it."""
    if not options.partial:
        return None
    return Selection(frozenset(options.tables), frozenset(options.schemas))


class PgRestoreTarget:
    """Restore into a temporary database on the target server, then rename it into place.

    The target name is never absent for longer than two renames, and never half-restored: the old database is
    renamed aside, the new one renamed in, and only then is the old one dropped. Any failure before that
    drops the temporary database and leaves the target as it was.
    """

    def __init__(self, conn: PgConn, spec: RestoreSpec, options: RestoreOptions, *, pg_bin: str | None = None) -> None:
        self.conn = conn
        self.pg_bin = pg_bin
        self.options = options
        self.spec = spec
        self.target = conn.dbname
        self.description = conn.display()
        self._admin_db = "postgres"
        token = secrets.token_hex(4)
        self.temp = f"{self.target[:40]}{TEMP_MARK}{token}"
        self._aside = f"{self.target[:40]}{ASIDE_MARK}{token}"
        self._created = False
        self.existed = self._exists(self.target)
        if self.existed and not options.drop_existing:
            raise RestoreError(
                f"database {self.target} already exists at {conn.where}",
                "restore to a new name, or pass --drop-existing to replace it",
            )
        self._create_temp()

    def _q(self, sql: str, doing: str) -> list[list[str]]:
        return query(self.conn.with_db(self._admin_db), sql, pg_bin=self.pg_bin, doing=doing)

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
        spec = self.spec
        encoding = spec.encoding or "UTF8"
        base = f"CREATE DATABASE {quote_ident(self.temp)} TEMPLATE template0 ENCODING {quote_literal(encoding)}"
        attempts = []
        if spec.lc_collate and spec.lc_ctype:
            libc = f"{base} LC_COLLATE {quote_literal(spec.lc_collate)} LC_CTYPE {quote_literal(spec.lc_ctype)}"
            if spec.locale_provider == "icu" and spec.icu_locale:
                attempts.append(f"{libc} LOCALE_PROVIDER icu ICU_LOCALE {quote_literal(spec.icu_locale)}")
            attempts.append(libc)
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
        """Load the dump into the temporary database: a custom archive through pg_restore (archive.py), a plain
        dump through psql, over two sessions when ``reopen`` gives a second reader and ``jobs`` > 1 (load.py)."""
        conn = self.conn.with_db(self.temp)
        env = conn.env()
        if self.options.disable_triggers:
            env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " -c session_replication_role=replica").strip()

        def on_error(exc: ToolError) -> DbkeeperError:
            return classify(exc, conn, f"restoring into {self.target}")

        no_owner, jobs = self.options.no_owner, self.options.jobs
        selection = selection_of(self.options)
        if self.spec.dump_format == "custom":
            pg_restore = pick("pg_restore", None, self.pg_bin).path
            load_archive(
                chunks,
                pg_restore=pg_restore,
                dbname=self.temp,
                env=env,
                on_error=on_error,
                no_owner=no_owner,
                jobs=jobs,
                selection=selection,
            )
            return
        if selection is not None:  # one session: the two-session loader reads the whole dump twice
            chunks, reopen = select(chunks, selection), None
        load_plain(
            chunks,
            reopen,
            psql=pick("psql", None, self.pg_bin).path,
            env=env,
            on_error=on_error,
            no_owner=no_owner,
            jobs=jobs,
            weights=self.spec.row_counts,
        )

    def row_counts(self, tables: Iterable[str]) -> dict[str, int]:
        """The rows of each table, named as the dump names them: sent in the dump's own client encoding, so that a
        LATIN1 or SQL_ASCII name reaches the server as the bytes it was (see dumpformat.table_name)."""
        names = list(tables)
        counts: dict[str, int] = {}
        conn = self.conn.with_db(self.temp)
        if self.spec.encoding:
            conn = replace(conn, params=(*conn.params, ("client_encoding", self.spec.encoding)))
        for start in range(0, len(names), 200):
            batch = names[start : start + 200]
            sql = " UNION ALL ".join(f"SELECT {i}, count(*) FROM ONLY {name}" for i, name in enumerate(batch))
            for row in query(conn, sql, pg_bin=self.pg_bin, doing="counting restored rows"):
                counts[batch[int(row[0])]] = int(row[1])
        return counts

    def commit(self) -> None:
        """Put the restored database in place. A new target is one rename. Replacing one: its owner and settings
        are carried over, new sessions are refused and the open ones ended, then ONE transaction renames the old
        database aside and the new one in (PostgreSQL allows ALTER DATABASE … RENAME in a transaction block), so
        the target name is never missing; then the old one is dropped. SIGINT and SIGTERM wait while this runs:
        the swap is whole or not done at all, and the target always accepts connections afterwards. SIGKILL can
        stop it between the steps: ``dbkeeper cleanup`` finds what that left (leftovers.py)."""
        t, tmp, aside = quote_ident(self.target), quote_ident(self.temp), quote_ident(self.aside)
        if not self.existed:
            self._give(dbprops.DbProps.of(self.spec))  # what the source database had
            self._q(f"ALTER DATABASE {tmp} RENAME TO {t}", f"renaming the restored database to {self.target}")
            self._created = False
            return
        self._give(dbprops.read(self.conn, self.target, self._major(), pg_bin=self.pg_bin))  # what it replaces had
        with signals_held():
            self._q(f"ALTER DATABASE {t} WITH ALLOW_CONNECTIONS false", f"locking {self.target}")
            try:
                self._swap_when_free(t, tmp, aside)
            except BaseException:
                self._q(f"ALTER DATABASE {t} WITH ALLOW_CONNECTIONS true", f"unlocking {self.target}")
                raise
            self._created = False
            self._q(f"DROP DATABASE {aside}", f"dropping the replaced database (now {self.aside})")

    def _give(self, props: dbprops.DbProps) -> None:
        """Give the restored (temporary) database a database's own properties: owner, comment, privileges and
        settings (the owner, the grants and per-role settings not with ``--no-owner``)."""
        for sql in dbprops.statements(self.temp, props, with_roles=not self.options.no_owner):
            self._q(sql, f"giving {self.temp} its properties")

    def _major(self) -> int:
        version = self._q("SELECT current_setting('server_version_num')", "reading the server's version")
        return int(version[0][0]) // 10000

    @property
    def aside(self) -> str:
        return self._aside

    def _swap_when_free(self, t: str, tmp: str, aside: str) -> None:
        """End the target's sessions, then rename it aside and the restored one in, in one transaction; a session
        that was just ended may take a moment to go."""
        end_sessions = (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = {quote_literal(self.target)} AND pid <> pg_backend_pid()"
        )
        swap = f"BEGIN; ALTER DATABASE {t} RENAME TO {aside}; ALTER DATABASE {tmp} RENAME TO {t}; COMMIT;"
        for attempt in range(50):
            self._q(end_sessions, f"ending sessions on {self.target}")
            try:
                self._q(swap, f"swapping the restored database in for {self.target}")
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
