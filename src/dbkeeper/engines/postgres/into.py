"""``restore --table/--schema --into-existing``: part of a backup loaded into a database that exists, in one
transaction that only creates.

The tables (or schemas) asked for must not exist in the target: an existing one is refused by name, unless
``--drop-existing`` asks for it to be replaced (``DROP TABLE`` without CASCADE, so a view or foreign key that
depends on it fails the restore instead of vanishing; ``DROP SCHEMA … CASCADE`` for a schema, which is what
replacing a schema means). Everything runs in one psql session inside ``BEGIN``: the drops, the selected part of
the dump (a custom archive's through ``pg_restore -L … -f -``, read by the same lexer as a plain dump), then the
row counts, read in the same transaction. Only when the whole backup was verified and the counts match the
manifest is ``COMMIT`` sent; any failure ends the session, and the server rolls everything back.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress

from dbkeeper import proc
from dbkeeper.codec import read_chunks
from dbkeeper.engines.interface import RestoreOptions, RestoreSpec
from dbkeeper.engines.postgres.archive import selected_list, spooled
from dbkeeper.engines.postgres.clients import pick
from dbkeeper.engines.postgres.conn import PgConn, quote_ident, quote_literal
from dbkeeper.engines.postgres.dumpformat import PlainCheck, drop_owner_statements
from dbkeeper.engines.postgres.dumpselect import Selection, select
from dbkeeper.engines.postgres.errors import classify
from dbkeeper.engines.postgres.psql import query
from dbkeeper.errors import RestoreError, ToolError, UsageError

_DONE = "dbkeeper-counts-done"
_BATCH = 500  # tables counted per round trip: their lines stay well inside the stderr kept


class PgIntoExisting:
    """The RestoreTarget of a partial restore into an existing database (see the module docstring)."""

    def __init__(self, conn: PgConn, spec: RestoreSpec, options: RestoreOptions, *, pg_bin: str | None = None) -> None:
        if not options.partial:
            raise UsageError(
                "--into-existing loads part of a backup into a database that exists",
                "name what: --table TABLE or --schema SCHEMA (a whole backup is restored into a new database)",
            )
        self.conn = conn
        self.spec = spec
        self.options = options
        self.pg_bin = pg_bin
        self.description = conn.display()
        self.existed = True
        self.selection = Selection(frozenset(options.tables), frozenset(options.schemas))
        self._drops = self._conflicts()
        self._psql: proc.Process | None = None

    def _conflicts(self) -> list[str]:
        """The DROP statements ``--drop-existing`` asks for; RestoreError naming what exists without it."""
        found, drops = [], []
        for schema, name in sorted(self.options.tables):
            qualified = f"{quote_ident(schema)}.{quote_ident(name)}"
            rows = query(self.conn, f"SELECT to_regclass({quote_literal(qualified)}) IS NOT NULL", pg_bin=self.pg_bin,
                         doing=f"looking for {qualified} in {self.conn.dbname}")  # fmt: skip
            if rows and rows[0][0] == "t":
                found.append(qualified)
                drops.append(f"DROP TABLE {qualified};")
        for schema in sorted(self.options.schemas):
            rows = query(
                self.conn,
                f"SELECT 1 FROM pg_namespace WHERE nspname = {quote_literal(schema)}",
                pg_bin=self.pg_bin,
                doing=f"looking for schema {schema} in {self.conn.dbname}",
            )
            if rows:
                found.append(f"schema {quote_ident(schema)}")
                drops.append(f"DROP SCHEMA {quote_ident(schema)} CASCADE;")
        if found and not self.options.drop_existing:
            raise RestoreError(
                f"{found[0]} already exists in {self.conn.dbname} at {self.conn.where}"
                + (f" (and {len(found) - 1} more)" if len(found) > 1 else "")
                + "; nothing was restored",
                "restore into a new database (leave out --into-existing), or pass --drop-existing to replace it",
            )
        return drops

    def load(self, chunks: Iterable[bytes], reopen: Callable[[], Iterator[bytes]] | None = None) -> None:
        env = self.conn.env()
        if self.options.disable_triggers:
            env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " -c session_replication_role=replica").strip()
        psql = pick("psql", None, self.pg_bin).path
        argv = [psql, "-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"]
        self._psql = proc.Process(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self._psql.write(("BEGIN;\n" + "".join(d + "\n" for d in self._drops)).encode())
        if self.spec.dump_format == "custom":
            pg_restore = pick("pg_restore", None, self.pg_bin).path
            with spooled(chunks) as archive:
                listing = archive + ".list"
                with open(listing, "w") as f:
                    f.write(selected_list(pg_restore, archive, self.selection))
                text = proc.Process([pg_restore, "-L", listing, "-f", "-", archive])
                with text:
                    check = PlainCheck()  # pg_restore's text is read by the same lexer as a plain dump
                    for chunk in self._owner(select(read_chunks(text.stdout), self.selection)):
                        check.feed(chunk)
                        self._psql.write(chunk)
                    text.check()
            return
        for chunk in self._owner(select(chunks, self.selection)):
            self._psql.write(chunk)

    def _owner(self, chunks: Iterable[bytes]) -> Iterable[bytes]:
        return drop_owner_statements(chunks) if self.options.no_owner else chunks

    def row_counts(self, tables: Iterable[str]) -> dict[str, int]:
        """The rows of each table, counted in the restore's own transaction (nothing is committed yet). psql
        buffers what it prints to a pipe, so each count comes back through ``\\warn`` on its stderr (never
        buffered), a batch at a time."""
        assert self._psql is not None
        names = list(tables)
        counts: dict[str, int] = {}
        for start in range(0, len(names) or 1, _BATCH):
            batch = names[start : start + _BATCH]
            done = f"{_DONE}-{start}"
            sql = "".join(
                f"SELECT count(*) AS dbkeeper_n FROM ONLY {name} \\gset\n\\warn dbkeeper-count {i} :dbkeeper_n\n"
                for i, name in enumerate(batch)
            )
            self._psql.write((sql + f"\\warn {done}\n").encode())
            with suppress(BrokenPipeError):
                self._psql.stdin.flush()  # what is written waits in our buffer otherwise
            while self._psql.poll() is None and done not in self._psql.stderr_so_far():  # psql stops at an error
                threading.Event().wait(0.02)
            said = self._psql.stderr_so_far()
            if done not in said:
                self._fail()
            for line in said.splitlines():
                parts = line.split(" ")
                if len(parts) == 3 and parts[0] == "dbkeeper-count" and int(parts[1]) < len(batch):
                    counts[batch[int(parts[1])]] = int(parts[2])
        return counts

    def _fail(self) -> None:
        assert self._psql is not None
        try:
            self._psql.check()
        except ToolError as exc:
            self._psql = None
            raise classify(exc, self.conn, f"restoring into {self.conn.dbname}") from exc
        raise RestoreError(f"psql ended before the restore into {self.conn.dbname} was done; nothing was kept")

    def commit(self) -> None:
        assert self._psql is not None
        self._psql.write(b"COMMIT;\n")
        try:
            self._psql.check()
        except ToolError as exc:
            raise classify(exc, self.conn, f"committing the restore into {self.conn.dbname}") from exc
        finally:
            self._psql = None

    def discard(self) -> None:
        """End the session: the server rolls back the open transaction, so nothing of it stays."""
        if self._psql is not None:
            self._psql.kill()
            self._psql = None
