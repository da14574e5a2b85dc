"""The Engine interface and the values that cross it; every engine module builds on this one alone.

It lives apart from ``dbkeeper.engines`` (which re-exports it) so that the engine modules, which implement it,
and the package, which picks one of them for a URL, do not import each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class DumpSelection:
    """What part of a database a backup holds, as pg_dump's own controls say it (``-t``, ``-T``, ``-n``, ``-N``,
    ``--exclude-table-data``) and the extra pg_dump options allowed through (engines/postgres/dumpopts.py checks
    them). The empty selection is the whole database; anything else makes a *partial* backup, recorded in its
    manifest so that ``list`` and ``verify`` say so."""

    tables: tuple[str, ...] = ()
    exclude_tables: tuple[str, ...] = ()
    schemas: tuple[str, ...] = ()
    exclude_schemas: tuple[str, ...] = ()
    exclude_table_data: tuple[str, ...] = ()
    pg_dump_options: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return any(self.to_json().values())

    def to_json(self) -> dict[str, list[str]]:
        return {
            "tables": list(self.tables),
            "exclude_tables": list(self.exclude_tables),
            "schemas": list(self.schemas),
            "exclude_schemas": list(self.exclude_schemas),
            "exclude_table_data": list(self.exclude_table_data),
            "pg_dump_options": list(self.pg_dump_options),
        }

    def describe(self) -> str:
        """The selection as pg_dump's flags, for people: ``-t public.users -N audit``."""
        flags = (
            ("-t", self.tables),
            ("-T", self.exclude_tables),
            ("-n", self.schemas),
            ("-N", self.exclude_schemas),
            ("--exclude-table-data", self.exclude_table_data),
        )
        words = [f"{flag} {pattern}" for flag, patterns in flags for pattern in patterns]
        return " ".join(words + list(self.pg_dump_options))


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
    selection: DumpSelection | None = None  # a partial backup's selection (None: the whole database)
    # About how many bytes the dump will be, for a progress line (pg_database_size, the SQLite file's size): an
    # estimate, never written into a manifest.
    size_estimate: int | None = None


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
class RestoreSpec:
    """What a restore target needs to know of the backup it loads, read once from the manifest by the caller.

    ``dump_format`` picks the loader ("plain", "custom" for pg_restore, "sqlite"); ``encoding`` and the locale
    (``lc_collate``, ``lc_ctype``, the provider and ICU locale) are the source database's, so that the temporary
    database is created like it (None: the server's defaults); ``row_counts`` (table -> rows) weighs the tables
    when a plain dump is loaded over two sessions; owner, comment, ACL and settings are given to a database
    restored under a new name. An engine ignores what does not apply to it (SQLite: all but the format).
    """

    dump_format: str
    encoding: str | None = None
    lc_collate: str | None = None
    lc_ctype: str | None = None
    row_counts: Mapping[str, int] = field(default_factory=dict)
    # The source database's own properties, which its dump does not carry (None: not recorded, leave as created).
    locale_provider: str | None = None  # "libc" | "icu" | "builtin"
    icu_locale: str | None = None
    owner: str | None = None
    comment: str | None = None
    acl: str | None = None  # as the server prints it: {=Tc/postgres,app=CTc/postgres}
    settings: tuple[tuple[str, str], ...] = ()  # (role, or "" for every role; "name=value")


@dataclass(frozen=True)
class RestoreOptions:
    drop_existing: bool = False
    no_owner: bool = False
    disable_triggers: bool = False
    jobs: int = 1  # sessions to load with, where the engine can (PostgreSQL plain dumps: up to 2)
    # Part of a backup (restore --table/--schema; PostgreSQL): tables as (schema, name) and schemas, unquoted.
    tables: tuple[tuple[str, str], ...] = ()
    schemas: tuple[str, ...] = ()
    into_existing: bool = False  # load them into the existing target database (only creating) instead of a new one

    @property
    def partial(self) -> bool:
        return bool(self.tables or self.schemas)


class Dump(Protocol):
    """A running dump. Iterate ``chunks()`` to the end, then ``finish()`` checks it and returns row counts."""

    def chunks(self) -> Iterator[bytes]: ...
    def finish(self) -> dict[str, int]: ...


class DumpCheck(Protocol):
    """Checks a dump's raw bytes as they stream past (verify)."""

    passed: str  # what a clean result means, in the words of a report ("integrity_check ok")

    def feed(self, chunk: bytes) -> None: ...
    def end(self) -> None:
        """All bytes were fed: raise ContentRefused now if they hold what would run as more than data and the
        checker could not say so while they streamed (a custom archive's SQL comes from pg_restore, behind the
        stream). A loader that acts only on the whole stream (a spooled archive) then never acts on it."""
        ...

    def result(self) -> tuple[dict[str, int], list[str]]:
        """(row counts found in the dump, problems) once all bytes were fed."""
        ...

    def close(self) -> None: ...


class RestoreTarget(Protocol):
    """A restore in progress: load into a hidden temporary, count, then commit or discard."""

    description: str
    existed: bool  # the target was there before (and will be replaced: --drop-existing)

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

    def display(self) -> str:
        """The database as a person reads it in messages and results: its URL or path, never a password."""
        ...

    def scratch(self, name: str) -> Engine:
        """The engine of another database, ``name``, beside this one: on the same server with the same
        credentials (PostgreSQL), in the same directory (SQLite). Nothing is created or connected to; a drill
        restores into it and drops it."""
        ...

    def inspect(self) -> SourceInfo: ...
    def dump(self) -> AbstractContextManager[Dump]: ...
    def restore_target(self, spec: RestoreSpec, options: RestoreOptions) -> RestoreTarget:
        """Check the target (exists? allowed?) and prepare a temporary; nothing visible changes yet."""
        ...

    def query(self, sql: str) -> Sequence[Sequence[str | None]]:
        """Run one SQL statement in this database; its rows as text (None for NULL where the engine tells)."""
        ...

    def drop(self) -> None:
        """Remove this database entirely. Only drills call it, on the scratch copy they restored themselves."""
        ...


def redact(url: str) -> str:
    """A URL with any password replaced, fit for messages, logs and labels.

    A password may hold ``@``, ``/`` or ``:`` that were not percent-encoded, so everything from the user's ``:`` to
    the URL's last ``@`` goes (too much is hidden rather than too little), and so does a ``password=`` parameter.
    """
    url = re.sub(r"(://[^:/@]*):.*@", r"\1:***@", url, flags=re.DOTALL)
    return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)


_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_SECRET_WORD = re.compile(r"(?i)\b(password|passwd|pgpassword|secret|token)(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|\S+)")


def redact_text(text: str) -> str:
    """Free text (an error message, a notification) with every URL in it passed through ``redact`` and any
    ``password=…`` / ``token: …`` value replaced: what goes to a chat room or a mailbox holds no secret."""
    text = _URL_IN_TEXT.sub(lambda m: redact(m.group(0)), text)
    return _SECRET_WORD.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
