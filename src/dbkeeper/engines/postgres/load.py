"""Loading a plain dump with psql: in one session, or over two connections as ``pg_restore -j`` does for archives.

A plain dump is one stream, in three sections: pre-data (schema), data (``COPY`` blocks, sequence values, large
objects) and post-data (indexes, constraints, triggers …). Each ``COPY`` block only needs its table to exist,
and the post-data ``INDEX``/``CONSTRAINT`` entries (primary keys, unique, check, exclusion) do not depend on one
another. So:

1. pre-data runs in one session, which ends (everything committed) before anything else starts;
2. the data runs in two sessions at once: the main reader feeds its tables (and every other data entry) to one,
   while a second reader of the same backup skips to the other tables and feeds those to the other; the tables
   are split so that both carry about the same weight;
3. the post-data index and constraint entries (buffered: they are short) run in two sessions at once, then
   every other post-data entry runs in order in one session (foreign keys, attaches, triggers, comments …).

Every session first gets the dump's header (its SET lines, the ``\\restrict`` line) and the last
``default_tablespace``/``default_table_access_method`` setting seen, so each statement runs as it would have
in one session. Any failure kills the other sessions and raises; the caller drops the temporary database.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from dbkeeper import proc
from dbkeeper.engines.postgres.dumpformat import (
    DATA_TYPES,
    PARALLEL_POST_DATA,
    Piece,
    drop_owner_statements,
    split_entries,
    table_name,
)
from dbkeeper.errors import ToolError


class Session:
    """One psql session fed through its stdin; ``close`` waits for it and raises on failure."""

    def __init__(self, argv: list[str], env: dict[str, str], on_error: Callable[[ToolError], Exception]) -> None:
        self._child = proc.Process(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self._on_error = on_error

    def write(self, data: bytes) -> None:
        """Feed psql; if it stopped reading, ``close`` raises with what it printed."""
        self._child.write(data)

    def close(self) -> None:
        try:
            self._child.check()
        except ToolError as exc:
            raise self._on_error(exc) from exc

    def kill(self) -> None:
        self._child.kill()


@dataclass
class _Header:
    """What every session must run first to behave like the one session the dump was written for."""

    lines: list[bytes] = field(default_factory=list)
    settings: dict[bytes, bytes] = field(default_factory=dict)

    def note(self, piece: Piece) -> None:
        if piece.entry == 0:
            self.lines.append(piece.data)
        elif piece.data.startswith((b"SET default_tablespace", b"SET default_table_access_method")):
            self.settings[piece.data.split(b"=")[0]] = piece.data

    def bytes(self) -> bytes:
        return b"".join(self.lines) + b"".join(self.settings.values())


def assign(weights: Mapping[str, int], workers: int = 2) -> list[set[str]]:
    """Split tables between workers, heaviest first onto the lightest (LPT): the makespan stays near-even."""
    loads = [0] * workers
    parts: list[set[str]] = [set() for _ in range(workers)]
    for table, weight in sorted(weights.items(), key=lambda item: (-item[1], item[0])):
        i = loads.index(min(loads))
        parts[i].add(table)
        loads[i] += max(weight, 1)
    return parts


class _Sections:
    """Which section a piece is in: "pre" until the first data entry, "data" through the data entries, "post"
    from the first entry after them."""

    def __init__(self) -> None:
        self.section = "pre"

    def of(self, piece: Piece) -> str:
        if self.section == "pre" and piece.kind in DATA_TYPES:
            self.section = "data"
        elif self.section == "data" and piece.entry and piece.kind not in DATA_TYPES:
            self.section = "post"
        return self.section


@dataclass
class _Entry:
    kind: str
    body: list[bytes]


def load_plain(
    chunks: Iterable[bytes],
    reopen: Callable[[], Iterator[bytes]] | None,
    *,
    psql: str,
    env: dict[str, str],
    on_error: Callable[[ToolError], Exception],
    no_owner: bool,
    jobs: int,
    weights: Mapping[str, int],
) -> None:
    """Feed a plain dump to ``psql`` (``ON_ERROR_STOP``): over two sessions when ``reopen`` gives a second reader
    of the same dump, ``jobs`` > 1 and there are tables to share (``weights``: the manifest's row counts), else
    in one. ``no_owner`` drops the ``ALTER … OWNER TO`` lines. Any failure kills every session and raises."""
    argv = [psql, "-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]

    def new_session() -> Session:
        return Session(argv, env, on_error)

    def owner_filter(stream: Iterable[bytes]) -> Iterator[bytes]:
        return drop_owner_statements(stream) if no_owner else iter(stream)

    if reopen is not None and jobs > 1 and len(weights) > 1:
        parallel_load(owner_filter(chunks), lambda: owner_filter(reopen()), weights, new_session)
        return
    session = new_session()
    try:
        for chunk in owner_filter(chunks):
            session.write(chunk)
    except BaseException:
        session.kill()
        raise
    session.close()


def parallel_load(
    chunks: Iterable[bytes],
    reopen: Callable[[], Iterator[bytes]],
    weights: Mapping[str, int],
    new_session: Callable[[], Session],
) -> None:
    """Load a plain dump over two connections; see the module docstring."""
    theirs = assign(weights)[1]
    header = _Header()
    post: dict[int, _Entry] = {}
    sessions: list[Session] = []
    helper: _Helper | None = None
    sections = _Sections()
    current = new_session()
    sessions.append(current)
    try:
        for piece in split_entries(chunks):
            header.note(piece)
            before = sections.section
            section = sections.of(piece)
            if section == "data" and before == "pre":
                current.close()  # pre-data is committed: both data sessions can start
                current = new_session()
                sessions.append(current)
                current.write(header.bytes())
                if theirs:
                    helper = _Helper(reopen, theirs, header.bytes(), new_session())
                    sessions.append(helper.session)
            if section == "post":
                post.setdefault(piece.entry, _Entry(piece.kind, [])).body.append(piece.data)
            elif not (section == "data" and piece.kind == "TABLE DATA" and piece.table in theirs):
                current.write(piece.data)
        current.close()
        if helper:
            helper.finish()
        if post:
            _post_data(list(post.values()), header.bytes(), new_session, sessions, weights)
    except BaseException:
        if helper:
            helper.stop()
        for session in sessions:
            session.kill()
        raise


_ON_TABLE = re.compile(rb"(?:\bON (?:ONLY )?|^ALTER TABLE (?:ONLY )?)(\S+)", re.MULTILINE)


def _post_data(
    entries: list[_Entry],
    head: bytes,
    new_session: Callable[[], Session],
    sessions: list[Session],
    weights: Mapping[str, int],
) -> None:
    parallel = [e for e in entries if e.kind in PARALLEL_POST_DATA]
    if parallel:
        # Each index costs about what its table weighs: the heaviest first, onto the less loaded session.
        def weight(entry: _Entry) -> int:
            m = _ON_TABLE.search(b"".join(entry.body))
            return weights.get(table_name(m.group(1)), 1) if m else 1

        pair = [new_session(), new_session()]
        sessions.extend(pair)
        loads = [0, 0]
        for s in pair:
            s.write(head)
        for entry in sorted(parallel, key=weight, reverse=True):
            i = loads.index(min(loads))
            loads[i] += weight(entry)
            for data in entry.body:
                pair[i].write(data)
        for s in pair:
            s.close()
    last = new_session()
    sessions.append(last)
    last.write(head)
    for entry in entries:
        if entry.kind not in PARALLEL_POST_DATA:
            for data in entry.body:
                last.write(data)
    last.close()


class _Helper:
    """The second data session: its own reader of the backup, feeding only its tables."""

    def __init__(self, reopen: Callable[[], Iterator[bytes]], tables: set[str], head: bytes, session: Session):
        self.session = session
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(reopen, tables, head), daemon=True)
        self._thread.start()

    def _run(self, reopen: Callable[[], Iterator[bytes]], tables: set[str], head: bytes) -> None:
        stream = reopen()
        try:
            self.session.write(head)
            sections = _Sections()
            for piece in split_entries(stream):
                if self._stop.is_set():
                    return
                section = sections.of(piece)
                if section == "post":
                    break  # nothing more for this session
                if section == "data" and piece.kind == "TABLE DATA" and piece.table in tables:
                    self.session.write(piece.data)
            self.session.close()
        except BaseException as exc:
            self._error = exc
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()

    def finish(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        self._stop.set()
        self.session.kill()
        self._thread.join(timeout=5)
