"""SQLite through its online backup API: a consistent copy while the application keeps writing.

``Connection.backup`` with ``pages=-1`` copies the whole database in one step under a read transaction, so
the copy is one snapshot even in WAL mode with writers active. The copy is checked with
``PRAGMA integrity_check`` before it is streamed out. A restore writes a temporary file beside the target,
checks it, and then either renames it into place (new target) or copies it into the existing database with the
backup API, which SQLite does in one transaction that also respects the target's WAL: a plain rename over a
database with a live ``-wal`` file would corrupt it.

Working copies (a backup's snapshot, the file ``verify`` checks) live in a locked private directory and a restore's
temporary beside its target is locked too (workfiles.py): removed on an error, SIGINT or SIGTERM, and found after
a SIGKILL. Files of our own are opened ``immutable``, so SQLite puts no ``-wal``/``-shm`` beside them (a WAL
database's copy is still one), and the copy into an existing target runs with SIGINT and SIGTERM held: the target
is replaced whole or not at all.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from dbkeeper.codec import read_chunks
from dbkeeper.engines.interface import RestoreOptions, RestoreSpec, SourceInfo, SourceKey
from dbkeeper.errors import CheckFailed, NoSpace, RestoreError, SourceError, UsageError
from dbkeeper.proc import signals_held
from dbkeeper.workfiles import TempBeside, WorkDir


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def integrity_problems(conn: sqlite3.Connection) -> list[str]:
    """What ``PRAGMA integrity_check`` finds (at most five lines); a file too damaged for the check to run at all
    ("database disk image is malformed") is one problem too, never an exception that escapes as a traceback."""
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        return [f"integrity_check: {exc}"]
    return [] if rows == ["ok"] else [f"integrity_check: {r}" for r in rows[:5]]


def row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    return {n: conn.execute(f"SELECT count(*) FROM {_quote(n)}").fetchone()[0] for n in names}


def _own(path: str | Path) -> str:
    """The URI of a file only dbkeeper uses (a copy, a spool, a restore's temporary): read-only and immutable, so
    SQLite takes no locks and creates no ``-wal``/``-shm`` files beside it, even for a database in WAL mode."""
    quoted = Path(path).as_posix().replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    return f"file:{quoted}?mode=ro&immutable=1"


def _open_checked(path: str | Path, what: str) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(_own(path), uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise CheckFailed(f"{what} is not a readable SQLite database: {exc}") from exc
    return conn


def sqlite_key(path: str | Path) -> SourceKey:
    """A SQLite database is its file: the real path, so that every spelling of it (relative, through a
    symlink) is one source and two files of the same name in different directories are two."""
    real = os.path.realpath(path)
    return SourceKey(Path(real).stem, f"sqlite:{real}")


class SqliteEngine:
    name = "sqlite"

    def __init__(self, path: str, name: str | None = None) -> None:
        self.path = Path(path)
        self.label = name or self.path.stem

    def _connect_source(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise SourceError(f"SQLite database {self.path} does not exist", "check the path in the source URL")
        try:
            conn = sqlite3.connect(f"file:{self.path.as_posix()}?mode=ro", uri=True, timeout=30)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise SourceError(f"cannot read SQLite database {self.path}: {exc}") from exc
        return conn

    def key(self) -> SourceKey:
        return sqlite_key(self.path)

    def display(self) -> str:
        return str(self.path)

    def scratch(self, name: str) -> SqliteEngine:
        return SqliteEngine(str(self.path.parent / f"{name}.db"))

    def inspect(self) -> SourceInfo:
        with closing(self._connect_source()) as conn:
            encoding = conn.execute("PRAGMA encoding").fetchone()[0]
            journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
        return SourceInfo(
            engine=self.name,
            database=self.label,
            kind="db",
            dump_format="sqlite",
            server_version=sqlite3.sqlite_version,
            dump_tool_version=f"sqlite3 {sqlite3.sqlite_version} (online backup API)",
            server_encoding=encoding,
            source={"path": str(self.path.resolve())},
            extra={"journal_mode": journal},
            size_estimate=self.path.stat().st_size,
        )

    @contextmanager
    def dump(self) -> Iterator[SqliteDump]:
        with WorkDir("sqlite") as workdir:
            copy = workdir / "copy.db"
            with closing(self._connect_source()) as src, closing(sqlite3.connect(copy)) as dst:
                try:
                    src.backup(dst, pages=-1)
                except sqlite3.DatabaseError as exc:
                    if "disk" in str(exc) or "full" in str(exc):
                        raise NoSpace(
                            f"no space left for the temporary copy of {self.path} in {workdir} ({exc})",
                            "free space there, or set TMPDIR to a directory on a larger disk",
                        ) from exc
                    raise SourceError(f"SQLite backup of {self.path} failed: {exc}") from exc
            os.chmod(copy, 0o600)
            with closing(_open_checked(copy, "the copy")) as conn:
                problems = integrity_problems(conn)
                if problems:
                    raise SourceError(
                        f"the copy of {self.path} fails {problems[0]}",
                        "the source database itself is damaged: run PRAGMA integrity_check on it",
                    )
                counts = row_counts(conn)
            yield SqliteDump(copy, counts)

    def restore_target(self, spec: RestoreSpec, options: RestoreOptions) -> SqliteRestoreTarget:
        if options.partial or options.into_existing:
            raise UsageError(
                "--table, --schema and --into-existing are for PostgreSQL backups; a SQLite backup is restored whole"
            )
        return SqliteRestoreTarget(self.path, options)

    def query(self, sql: str) -> list[list[str | None]]:
        if not self.path.is_file():
            raise SourceError(f"SQLite database {self.path} does not exist")
        try:
            with closing(sqlite3.connect(self.path, timeout=30)) as conn:
                rows = conn.execute(sql).fetchall()
                conn.commit()
        except (sqlite3.Error, sqlite3.Warning) as exc:
            raise SourceError(f"{exc}") from exc
        return [[_text(v) for v in row] for row in rows]

    def drop(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            except OSError as exc:
                raise RestoreError(f"cannot remove {self.path}{suffix}: {exc.strerror}") from exc


def _text(value: object) -> str | None:
    """A value as psql would print it: NULL stays None, bytes as bytea hex."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return str(value)


class SqliteDump:
    def __init__(self, path: Path, counts: dict[str, int]) -> None:
        self._path = path
        self._counts = counts

    def chunks(self) -> Iterator[bytes]:
        with open(self._path, "rb") as f:
            yield from read_chunks(f)

    def finish(self) -> dict[str, int]:
        return dict(self._counts)


class SqliteCheck:
    """Spools the database to a private temporary file, then runs the integrity check on it."""

    passed = "integrity_check ok"

    def __init__(self) -> None:
        self._dir = WorkDir("verify")
        self._path = self._dir.path / "check.db"
        self._file = open(self._path, "wb")  # noqa: SIM115 - closed in result()/close()

    def feed(self, chunk: bytes) -> None:
        self._file.write(chunk)

    def end(self) -> None:
        pass  # a database file runs nothing when it is copied into place

    def result(self) -> tuple[dict[str, int], list[str]]:
        self._file.close()
        if self._path.stat().st_size == 0:
            return {}, ["the SQLite file is empty"]
        with open(self._path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                return {}, ["the file does not start with the SQLite header"]
        try:
            with closing(_open_checked(self._path, "the backup")) as conn:
                problems = integrity_problems(conn)
                return (row_counts(conn) if not problems else {}), problems
        except (CheckFailed, sqlite3.DatabaseError) as exc:
            return {}, [str(exc)]

    def close(self) -> None:
        self._file.close()
        self._dir.close()


class SqliteRestoreTarget:
    def __init__(self, path: Path, options: RestoreOptions) -> None:
        self.path = path
        self.options = options
        self.description = str(path)
        self.existed = path.exists()
        if self.existed and not options.drop_existing:
            raise RestoreError(f"{path} already exists", "restore to a new path, or pass --drop-existing to replace it")
        if not path.parent.is_dir():
            raise RestoreError(f"directory {path.parent} does not exist", "create it first")
        self._temp = TempBeside(path)
        self.temp = self._temp.path

    def load(self, chunks: Iterable[bytes], reopen: Callable[[], Iterator[bytes]] | None = None) -> None:
        try:
            with open(self.temp, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise RestoreError(f"writing {self.temp}: {exc.strerror}") from exc
        with closing(_open_checked(self.temp, "the restored file")) as conn:
            problems = integrity_problems(conn)
        if problems:
            raise RestoreError(f"the restored database fails {problems[0]}")

    def row_counts(self, tables: Iterable[str]) -> dict[str, int]:
        with closing(_open_checked(self.temp, "the restored file")) as conn:
            counts = row_counts(conn)
        return {t: counts[t] for t in tables if t in counts}

    def commit(self) -> None:
        if not self.existed:
            os.chmod(self.temp, 0o600)
            os.replace(self.temp, self.path)
            self._temp.release()
            return
        try:
            # One transaction of SQLite's, which SIGKILL leaves to SQLite's own recovery (the target's journal
            # or WAL, which must stay); SIGINT and SIGTERM wait for it, and then for the connection's close.
            with (
                signals_held(),
                closing(sqlite3.connect(_own(self.temp), uri=True)) as src,
                closing(sqlite3.connect(self.path, timeout=30)) as dst,
            ):
                src.backup(dst, pages=-1)
        except sqlite3.DatabaseError as exc:
            raise RestoreError(
                f"replacing {self.path} failed: {exc}", "stop the application that holds it locked and retry"
            ) from exc
        self._temp.close()

    def discard(self) -> None:
        self._temp.close()
