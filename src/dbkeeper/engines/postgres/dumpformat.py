"""pg_dump's plain SQL format: the one place that reads it, as it streams past, without holding it.

Three readers share its grammar (the COPY line, the end marker, the TOC comments): ``PlainDumpScanner`` counts
rows and checks the header and trailer (``PlainCheck`` for backup and verify), ``drop_owner_statements`` is
``--no-owner`` for psql, and ``split_entries`` cuts the dump into its TOC entries for the two-session load.

A plain dump is SQL with the table data in ``COPY … FROM stdin;`` blocks: one row per line in COPY text format
(newlines inside values are escaped as ``\\n``), ended by a line ``\\.``. Counting the lines of each block gives
exact row counts for the snapshot the dump holds. The same pass checks the header (the first line is an SQL
comment) and the trailer ``-- PostgreSQL database dump complete``; since 15.14/16.10/17.6 pg_dump writes
``\\restrict``/``\\unrestrict`` lines around the body, so the trailer is no longer the last line.

Inside COPY data the work per byte is a vectorized compare and count (``_Newlines``); only the SQL between blocks
is split into lines.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any

from dbkeeper.errors import ContentRefused

TRAILER = b"-- PostgreSQL database dump complete"
CLUSTER_TRAILER = b"-- PostgreSQL database cluster dump complete"  # pg_dumpall
_IDENT = rb'(?:"(?:[^"]|"")*"|[^\s".(]+)'
# pg_dump writes "COPY <table> (<columns>) FROM stdin;", and "COPY <table>  FROM stdin;" (two spaces) for a table
# without columns; a quoted name may hold a newline, so the statement may span lines.
_COPY_RE = re.compile(rb"^COPY (" + _IDENT + rb"(?:\." + _IDENT + rb")*)(?: \(.*\)| )? FROM stdin;$", re.DOTALL)
_OWNER_RE = re.compile(rb"^ALTER [A-Z ]+ .+ OWNER TO .+;$")
_END = b"\n\\.\n"
PASSED = "header and 'dump complete' trailer present"  # what a clean check of pg_dump's text means


def copy_table(statement: bytes) -> str:
    """The table a ``COPY … FROM stdin;`` statement loads, as the dump names it (what psql then reads as data
    however it is spelled: a name the pattern does not know is still taken whole, never read as SQL)."""
    m = _COPY_RE.match(statement)
    if m:
        return table_name(m.group(1))
    return table_name(statement[5 : -len(b" FROM stdin;")].strip())


def table_name(raw: bytes) -> str:
    """A table's name as the dump spells it, kept exactly: in the dump's own encoding (LATIN1, SQL_ASCII …) the
    bytes that are not UTF-8 become surrogates, which go back to the same bytes on a command line. A guess
    (U+FFFD) would name no table on the server; ``row_counts`` of a restore sends these bytes back as they were,
    in the dump's client encoding."""
    return raw.decode("utf-8", "surrogateescape")


class PlainDumpScanner:
    """Feed it the dump's bytes in any chunking; read ``row_counts``, ``header_ok``, ``complete`` and ``not_data``
    after. ``statements``: judge the statements too (a database's dump; pg_dumpall's roles are statements about
    roles by nature, and are never restored by dbkeeper)."""

    def __init__(self, statements: bool = True, globals_file: bool = False) -> None:
        self._statements = statements
        self._globals = globals_file
        self.row_counts: dict[str, int] = {}
        self.header_ok: bool | None = None
        self.complete = False
        self.bytes_seen = 0
        self._head = b""
        self._table: str | None = None
        self._rows = 0
        self._pending = b""  # an SQL line not yet ended
        self._tail = b""  # inside COPY data: the last (up to 3) bytes before this chunk
        self._sql = _Sql(statements, globals_file)
        self._lines = 0  # lines read so far, for naming a line
        self.not_data: str | None = None  # the first thing found that would run as more than data

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.header_ok is None:
            self._head += chunk[:2]
            if len(self._head) >= 2:
                self.header_ok = self._head.startswith(b"--")
        self.bytes_seen += len(chunk)
        lines = _Newlines(chunk)
        pos, n = 0, len(chunk)
        while pos < n:
            if self._table is not None:
                pos = self._copy_data(chunk, pos, lines)
                continue
            nl = chunk.find(b"\n", pos)
            if nl < 0:
                self._pending += chunk[pos:]
                return
            line = chunk[pos:nl]
            if self._pending:
                line, self._pending = self._pending + line, b""
            self._line(line)
            pos = nl + 1
            if self._table is not None:
                self._tail = b"\n"  # the COPY line's own newline may start the end marker of an empty block

    def _copy_data(self, chunk: bytes, pos: int, lines: _Newlines) -> int:
        """Count the rows of COPY data from ``pos``; return where the data ended, or len(chunk)."""
        if pos == 0 and self._tail:  # an end marker split across chunks
            head = self._tail + chunk[:3]
            at = head.find(_END)
            if at >= 0 and at + len(_END) > len(self._tail):
                return self._end_table(at + len(_END) - len(self._tail))
        end = lines.marker_from(pos - 1 if pos else 0)
        if end < 0:
            self._rows += lines.count(pos, len(chunk))
            self._tail = (self._tail + chunk[-3:])[-3:] if len(chunk) < 3 else chunk[-3:]
            return len(chunk)
        self._rows += lines.count(pos, end + 1)
        return self._end_table(end + len(_END))

    def _end_table(self, resume: int) -> int:
        assert self._table is not None
        self.row_counts[self._table] = self.row_counts.get(self._table, 0) + self._rows
        self._lines += self._rows + 1
        self._table, self._rows, self._tail = None, 0, b""
        return resume

    def _line(self, line: bytes) -> None:
        self._lines += 1
        if line.startswith((TRAILER, CLUSTER_TRAILER)) and self._sql.idle:
            self.complete = True
        try:
            copy = self._sql.line(line, self._lines)
        except DumpNotData as exc:
            self.not_data = self.not_data or str(exc)
            # Read on from a clean state: the first finding is what is reported.
            self._sql = _Sql(self._statements, self._globals)
            return
        if copy is not None:
            self._table = copy_table(copy)
            self._rows = 0

    def problems(self) -> list[str]:
        """What is wrong with the dump seen so far, as a whole (call after the last chunk)."""
        out = []
        if not self.bytes_seen:
            out.append("the dump is empty")
        elif not self.header_ok:
            out.append("the dump does not start with pg_dump's header comment")
        if self._table is not None:
            out.append(f"the dump ends inside the data of {self._table}")
        if self.bytes_seen and not self.complete:
            out.append("the dump lacks pg_dump's 'dump complete' trailer: it was cut short")
        if self.not_data:
            out.append(f"the dump is not only data: {self.not_data}")
        return out


# -- the SQL between COPY blocks --------------------------------------------------------------------------------

_NORMAL, _QUOTE, _ESCAPED, _IDENT_QUOTE, _DOLLAR, _COMMENT = range(6)
_NEXT = {
    _NORMAL: re.compile(rb"--|/\*|[Ee]'|'|\"|\$|\\|;"),
    _QUOTE: re.compile(rb"'"),
    _ESCAPED: re.compile(rb"\\.|'", re.DOTALL),
    _IDENT_QUOTE: re.compile(rb'"'),
    _COMMENT: re.compile(rb"/\*|\*/"),
}
_CLOSE = {_QUOTE: b"'", _ESCAPED: b"'", _IDENT_QUOTE: b'"'}
# In CREATE FUNCTION/PROCEDURE, a SQL-standard body (BEGIN ATOMIC … END) holds statements ended by ';' that belong
# to the body (the server parses them with the function, runs none). Only there, words and parentheses are read
# too: the body starts at BEGIN ATOMIC outside parentheses and ends at the END that matches it, CASE … END counted
# (the only other construct that ends with END; both words are reserved, so neither can be a bare name).
_ROUTINE = re.compile(rb"CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE)\b", re.I)
_NOT_WORD_BEFORE, _NOT_WORD_AFTER = rb"(?<![A-Za-z0-9_$\x80-\xff])", rb"(?![A-Za-z0-9_$\x80-\xff])"
_NEXT_ROUTINE = re.compile(
    rb"--|/\*|[Ee]'|'|\"|\$|\\|;|\(|\)|" + _NOT_WORD_BEFORE + rb"(?:BEGIN[ \t]+ATOMIC|CASE|END)" + _NOT_WORD_AFTER,
    re.I,
)
_DOLLAR_TAG = re.compile(rb"\$(?:[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)?\$")
_WORD_BYTE = re.compile(rb"[A-Za-z0-9_$\x80-\xff]")
_LEADING = re.compile(rb"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)
_META_OK = re.compile(rb"^\\(?:un)?restrict [A-Za-z0-9]+\r?$")  # pg_dump 15.14+, 16.10+, 17.6+
_COPY_IN = re.compile(rb"COPY\b.*\bFROM\s+stdin\s*;$", re.IGNORECASE | re.DOTALL)
_STATEMENT_MAX = 64 * 1024  # what is kept of a statement to judge it by; pg_dump's COPY lines are far shorter

# Statements pg_dump never writes for one database (without --create or --clean), and why they are refused: a
# forged dump must not run them with the restorer's rights.
_FORBIDDEN = [
    (re.compile(rb"(?:CREATE|ALTER|DROP)\s+(?:ROLE|USER|GROUP)\b", re.I), "creates or changes a role"),
    (re.compile(rb"ALTER\s+SYSTEM\b", re.I), "changes the server's configuration"),
    (re.compile(rb"(?:CREATE|ALTER|DROP)\s+DATABASE\b", re.I), "creates, changes or drops a database"),
    (
        re.compile(rb"(?:DO|CALL|LOAD|EXECUTE|PREPARE|LISTEN|NOTIFY|CHECKPOINT|VACUUM|CLUSTER|REINDEX|DROP)\b", re.I),
        "runs a command pg_dump never writes",
    ),
    (re.compile(rb"(?:GRANT|REVOKE)\b(?![^;]*\bON\b)", re.I | re.DOTALL), "grants or revokes a role membership"),
    (
        re.compile(rb"(?:SET|RESET)\s+(?:SESSION\s+|LOCAL\s+)?(?:ROLE|SESSION\s+AUTHORIZATION)\b", re.I),
        "switches roles",
    ),
    (
        re.compile(rb"SET\s+(?:SESSION\s+|LOCAL\s+)?standard_conforming_strings\s*(?:=|TO)\s*+(?!'?on'?\s*;)", re.I),
        "turns standard_conforming_strings off (which changes how the rest would be read)",
    ),
    (
        re.compile(
            rb"SET\s+(?:SESSION\s+|LOCAL\s+)?client_encoding\s*(?:=|TO)\s*'?(?:SJIS|SHIFT_JIS_2004|BIG5|GBK|GB18030|UHC|JOHAB)",
            re.I,
        ),
        "sets a client encoding in which a backslash can hide inside a character",
    ),
    (
        re.compile(rb"SELECT\b(?!\s+pg_catalog\.(?:set_config|setval|lo_create|lo_open|lowrite|lo_close)\s*\()", re.I),
        "is a query pg_dump never writes",
    ),
    (re.compile(rb"COPY\b(?!.*\bFROM\s+stdin;\s*$)", re.I | re.DOTALL), "copies to or from anything but the dump"),
]


_FORBIDDEN_SETTINGS = _FORBIDDEN[6:8]  # standard_conforming_strings off, an encoding that hides a backslash

# What pg_dumpall --globals-only writes, statement by statement (the whole statement must match). Which of them
# a restore runs is decided in globals.py: roles and tablespaces only where they are missing.
_ID = rb'(?:"(?:[^"]|"")*"|[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*)'
_GLOBALS = {
    "set": re.compile(
        rb"SET\s+(?:default_transaction_read_only\s*=\s*off|client_encoding\s*=\s*'[A-Za-z0-9_]+'"
        rb"|standard_conforming_strings\s*=\s*on)\s*;\Z"
    ),
    "create role": re.compile(rb"CREATE ROLE (" + _ID + rb");\Z"),
    "alter role": re.compile(
        rb"ALTER ROLE (" + _ID + rb") (?:WITH |IN DATABASE |SET |RESET )[^;]*(?:'[^']*'[^;']*)*;\Z"
    ),
    "grant role": re.compile(
        rb"GRANT " + _ID + rb" TO (" + _ID + rb")(?: WITH [A-Z ]+ (?:TRUE|FALSE|OPTION))*"
        rb"(?:, (?:INHERIT|SET) (?:TRUE|FALSE))*(?: GRANTED BY " + _ID + rb")?;\Z"
    ),
    "comment role": re.compile(rb"COMMENT ON ROLE (" + _ID + rb") IS '(?:[^']|'')*';\Z"),
    "create tablespace": re.compile(
        rb"CREATE TABLESPACE (" + _ID + rb") OWNER " + _ID + rb" LOCATION '(?:[^']|'')*';\Z"
    ),
    "tablespace": re.compile(
        rb"(?:ALTER TABLESPACE (" + _ID + rb") SET \([^;]*\)|COMMENT ON TABLESPACE (" + _ID + rb") IS '(?:[^']|'')*'"
        rb"|(?:GRANT|REVOKE) [A-Z, ]+ ON TABLESPACE (" + _ID + rb") (?:TO|FROM) [^;]*);\Z"
    ),
}


def globals_statements(data: bytes) -> list[tuple[str, bytes]]:
    """The statements of a pg_dumpall --globals-only file, each with its kind (a key of ``_GLOBALS``), read by the
    one lexer (meta-commands other than pg_dump's \\restrict refused, as is any statement such a file never holds:
    DumpNotData)."""
    kept: list[bytes] = []
    sql = _Sql(statements=False, globals_file=True, keep=kept)
    for number, line in enumerate(data.split(b"\n"), 1):
        sql.line(line, number)
    out = []
    for statement in kept:
        kind = next(k for k, pattern in _GLOBALS.items() if pattern.match(statement))
        out.append((kind, statement))
    return out


def globals_subject(kind: str, statement: bytes) -> str:
    """The role or tablespace a globals statement is about (unquoted), or "" for a SET."""
    m = _GLOBALS[kind].match(statement)
    raw = next((g for g in (m.groups() if m else ()) if g), b"")
    name = raw.decode("utf-8", "surrogateescape")
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


class DumpNotData(ValueError):
    """The dump holds what would run as more than data; the message names the line and what it is."""


def _head(statement: bytes) -> bytes:
    """A statement without the whitespace and comments before it."""
    m = _LEADING.match(statement)
    return statement[m.end() :] if m else statement


def _show(text: bytes) -> str:
    shown = " ".join(text.decode("utf-8", "replace").split())
    return shown if len(shown) <= 80 else shown[:77] + "..."


class _Sql:
    """psql's reading of the SQL between COPY blocks: strings ('', E'', $tag$), quoted identifiers and comments, so
    that a backslash (a psql meta-command), a ``;`` (a statement's end) or ``COPY … FROM stdin`` counts only where
    psql itself would see one: a comment whose text holds a line ``COPY t FROM stdin;`` stays text.

    ``line`` raises DumpNotData for a meta-command other than pg_dump's own ``\\restrict``/``\\unrestrict`` and
    for a statement pg_dump never writes (``_FORBIDDEN``)."""

    def __init__(self, statements: bool = True, globals_file: bool = False, keep: list[bytes] | None = None) -> None:
        self.statements = statements  # judge statements too (a database's dump)
        self.globals_file = globals_file  # judge them as pg_dumpall --globals-only's (roles, tablespaces)
        self.keep = keep  # where each whole statement goes, when the caller wants them
        self.state = _NORMAL
        self._tag = b""
        self._depth = 0
        self._statement = bytearray()  # the unfinished statement's text so far (up to _STATEMENT_MAX)
        self._routine: bool | None = None  # the statement is CREATE FUNCTION/PROCEDURE (None: not begun yet)
        self._parens = 0  # in a routine: open parentheses
        self._atomic = 0  # in a routine: inside BEGIN ATOMIC (1), and each CASE within (+1)

    @property
    def idle(self) -> bool:
        """Between statements: not inside a string, an identifier, a comment or an unfinished statement."""
        return self.state == _NORMAL and not _head(bytes(self._statement))

    def line(self, line: bytes, number: int) -> bytes | None:
        """Read one line (without its newline); a ``COPY … FROM stdin;`` statement that ends it, if one does."""
        if line.startswith(b"\\") and self.idle:
            if _META_OK.match(line):
                return None
            raise DumpNotData(f"line {number}: a psql meta-command: {_show(line)}")
        pos, begin, n, copy = 0, 0, len(line), None
        if self._routine is None:
            self._begins(bytes(self._statement) + line)
        while pos < n:
            state = self.state
            if state == _DOLLAR:
                at = line.find(self._tag, pos)
                if at < 0:
                    break
                pos, self.state = at + len(self._tag), _NORMAL
                continue
            m = (_NEXT_ROUTINE if state == _NORMAL and self._routine else _NEXT[state]).search(line, pos)
            if m is None:
                break
            token, start, pos = m.group(), m.start(), m.end()
            if state == _COMMENT:
                self._depth += 1 if token == b"/*" else -1
                if not self._depth:
                    self.state = _NORMAL
            elif state != _NORMAL:
                if token[:1] == b"\\":
                    continue  # an escaped character of an E'' string
                if line[pos : pos + 1] == _CLOSE[state]:
                    pos += 1  # doubled: part of the text
                else:
                    self.state = _NORMAL
            elif token == b"--":
                break
            elif token == b"/*":
                self.state, self._depth = _COMMENT, 1
            elif token == b"'":
                self.state = _QUOTE
            elif token in (b"E'", b"e'"):
                self.state = _QUOTE if start and _WORD_BYTE.match(line, start - 1) else _ESCAPED
            elif token == b'"':
                self.state = _IDENT_QUOTE
            elif token == b"$":
                tag = None if start and _WORD_BYTE.match(line, start - 1) else _DOLLAR_TAG.match(line, start)
                if tag:
                    self._tag, self.state, pos = tag.group(), _DOLLAR, tag.end()
            elif token == b"\\":
                raise DumpNotData(f"line {number}: a psql meta-command: {_show(line[start:])}")
            elif token != b";":
                self._routine_token(token.upper())
            elif self._atomic:
                continue  # a statement of the body: part of the CREATE statement
            else:
                statement = _head(bytes(self._statement) + line[begin:pos])
                self._statement.clear()
                self._routine, self._parens = None, 0
                self._begins(line[pos:])
                begin = pos
                if self.globals_file:
                    self._judge_globals(statement, number)
                elif self.statements:
                    self._judge(statement, number)
                if self.keep is not None:
                    self.keep.append(statement)
                if _COPY_IN.match(statement):  # psql reads what follows as the table's data
                    if line[pos:].strip():
                        raise DumpNotData(f"line {number}: more follows COPY … FROM stdin on its line")
                    copy = statement
        if len(self._statement) < _STATEMENT_MAX:
            self._statement += line[begin:] + b"\n"
        return copy

    def _begins(self, text: bytes) -> None:
        """Whether the statement that ``text`` starts (after comments) is a routine's; undecided while blank."""
        head = _head(text)
        if head:
            self._routine = _ROUTINE.match(head) is not None

    def _routine_token(self, token: bytes) -> None:
        if token == b"(":
            self._parens += 1
        elif token == b")":
            self._parens = max(0, self._parens - 1)
        elif token.startswith(b"BEGIN"):
            if not self._atomic and not self._parens:
                self._atomic = 1
        elif token == b"CASE":
            self._atomic += 1 if self._atomic else 0
        elif token == b"END":
            self._atomic = max(0, self._atomic - 1)

    @staticmethod
    def _judge(statement: bytes, number: int) -> None:
        for pattern, why in _FORBIDDEN:
            if pattern.match(statement):
                raise DumpNotData(f"line {number}: a statement that {why}: {_show(statement)}")

    @staticmethod
    def _judge_globals(statement: bytes, number: int) -> None:
        """A globals file holds roles, their settings and memberships, and tablespaces: nothing else. CREATE ROLE
        is allowed here, and only here."""
        for pattern, why in _FORBIDDEN_SETTINGS:
            if pattern.match(statement):
                raise DumpNotData(f"line {number}: a statement that {why}: {_show(statement)}")
        if not any(pattern.match(statement) for pattern in _GLOBALS.values()):
            raise DumpNotData(f"line {number}: a statement pg_dumpall --globals-only never writes: {_show(statement)}")


class PlainCheck:
    """The DumpCheck of a plain dump (and of pg_dumpall's globals, ``globals_file``: judged against what such a
    file holds, ``_GLOBALS``): the scanner's counts and problems."""

    passed = PASSED

    def __init__(self, statements: bool = True, globals_file: bool = False) -> None:
        self._scanner = PlainDumpScanner(statements, globals_file)

    def feed(self, chunk: bytes) -> None:
        """Scan the chunk; ContentRefused as soon as it holds what would run as more than data, before the chunk
        goes anywhere (a restore feeds psql only what was checked)."""
        self._scanner.feed(chunk)
        if self._scanner.not_data:
            raise ContentRefused(
                f"the dump is not only data: {self._scanner.not_data}",
                "pg_dump never writes that: the file was changed after the backup; restore another backup",
            )

    def end(self) -> None:
        pass  # ``feed`` refused already

    def result(self) -> tuple[dict[str, int], list[str]]:
        return dict(self._scanner.row_counts), self._scanner.problems()

    def close(self) -> None:
        pass


class _Newlines:
    """The newlines and COPY end markers of one chunk, queried by range.

    Counting lines is the scanner's whole cost on table data. A large chunk is scanned through numpy (a compare
    and a count, at memory speed: 0.07 s of CPU for 363 MB against 0.53 s with ``bytes.count`` and
    ``bytes.find``, whose search for ``\\n\\.\\n`` stops at every newline); small chunks, and large ones while
    numpy is still loading, use the bytes methods, which give the same answers.
    """

    def __init__(self, chunk: bytes) -> None:
        self._chunk = chunk
        self._np = _vectorizer() if len(chunk) >= VECTOR_MIN else None
        self._data: Any = None
        self._markers: Any = None

    def _array(self) -> Any:
        if self._data is None:
            assert self._np is not None
            self._data = self._np.frombuffer(self._chunk, dtype=self._np.uint8)
        return self._data

    def count(self, start: int, stop: int) -> int:
        """Newlines in chunk[start:stop]."""
        if self._np is None:
            return self._chunk.count(b"\n", start, stop)
        return int(self._np.count_nonzero(self._array()[start:stop] == 10))

    def marker_from(self, start: int) -> int:
        """Offset of the first complete end marker ``\\n\\.\\n`` at or after ``start``, or -1."""
        if self._np is None:
            return self._chunk.find(_END, start)
        np = self._np
        if self._markers is None:
            data = self._array()
            # Backslashes are rarer than newlines (\\N, escapes): find them, then look at their neighbours.
            slash = np.flatnonzero(data[1:-2] == 92) + 1
            found = slash[(data[slash - 1] == 10) & (data[slash + 1] == 46) & (data[slash + 2] == 10)]
            self._markers = found - 1
        i = int(np.searchsorted(self._markers, start))
        return int(self._markers[i]) if i < len(self._markers) else -1


VECTOR_MIN = 256 * 1024  # chunks this large go through numpy; a small database's dump never loads it
_numpy: ModuleType | None = None
_numpy_started = False


def _vectorizer() -> ModuleType | None:
    """numpy if it is loaded; the first call starts loading it on a thread, so that the dump never waits on the
    0.1 s import (the bytes methods serve meanwhile)."""
    global _numpy_started
    if _numpy is None and not _numpy_started:
        _numpy_started = True
        threading.Thread(target=_load_numpy, name="dbkeeper-numpy").start()
    return _numpy


def _load_numpy() -> None:
    """numpy is optional (the ``fast`` extra): without it the bytes methods serve every chunk, same answers."""
    global _numpy
    try:
        import numpy
    except ImportError:
        return
    _numpy = numpy


def _read_line(sql: _Sql, line: bytes) -> tuple[_Sql, bytes | None]:
    """Feed one line (with its newline) to ``sql``; the COPY … FROM stdin statement it ends, if any. What is not
    data is the checker's to refuse (PlainCheck, before any of it reaches psql): here reading goes on, afresh."""
    try:
        statement = sql.line(line.rstrip(b"\n"), 0)
    except DumpNotData:
        return _Sql(statements=False), None
    return sql, statement


def drop_owner_statements(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``--no-owner`` for a plain dump: drop the ``ALTER … OWNER TO …;`` lines outside COPY data.

    pg_restore has the option for archives; psql has none, so the filter does what pg_dump -O would have done.
    """
    in_copy = False
    pending = b""
    sql = _Sql(statements=False)
    for chunk in chunks:
        data = pending + chunk
        last_nl = data.rfind(b"\n")
        if last_nl < 0:
            pending = data
            continue
        pending = data[last_nl + 1 :]
        out = []
        for line in data[: last_nl + 1].splitlines(keepends=True):
            if in_copy:
                if line == b"\\.\n":
                    in_copy = False
                out.append(line)
                continue
            # Only an ALTER line asks whether a statement is open: that look copies the pending statement's text.
            owner = line.startswith(b"ALTER ") and sql.idle and _OWNER_RE.match(line.rstrip(b"\n")) is not None
            sql, copy = _read_line(sql, line)
            if copy is not None:
                in_copy = True
            elif owner and sql.idle:
                continue  # a whole statement of its own, not a line of a string or a function body
            out.append(line)
        yield b"".join(out)
    if pending:
        yield pending


_TOC_RE = re.compile(rb"^-- (?:Data for )?Name: (.*); Type: ([A-Z ]+); Schema: (.*?); Owner: ")
DATA_TYPES = frozenset({"TABLE DATA", "SEQUENCE SET", "BLOBS", "LARGE OBJECTS", "BLOB DATA"})
PARALLEL_POST_DATA = frozenset({"INDEX", "CONSTRAINT"})  # no dependencies on one another


class Piece:
    """A run of bytes of one TOC entry: ``entry`` counts entries (0 is the header before the first one),
    ``kind`` is the entry's ``Type:`` ("" for the header), ``table`` the table a COPY block's bytes belong to,
    ``toc`` the entry's (schema, name) as its TOC comment gives them ("-" for no schema; ("", "") for the header)."""

    __slots__ = ("data", "entry", "kind", "table", "toc")

    def __init__(self, entry: int, kind: str, table: str | None, data: bytes, toc: tuple[str, str] = ("", "")) -> None:
        self.entry, self.kind, self.table, self.data, self.toc = entry, kind, table, data, toc


def split_entries(chunks: Iterable[bytes]) -> Iterator[Piece]:
    """Cut a plain dump into its TOC entries (pg_dump's ``-- Name: …; Type: …`` comments), streaming.

    SQL is split into lines; COPY data passes through in large slices (only its end marker is searched for),
    so a table's data costs what a copy of its bytes costs.
    """
    entry, kind, table, toc = 0, "", None, ("", "")
    pending = b""
    in_copy = False
    sql = _Sql(statements=False)
    tail = b""  # in COPY data: the last bytes of the previous chunk, to see an end marker split across chunks
    for chunk in chunks:
        data = pending + chunk if pending else chunk
        pending = b""
        pos, n = 0, len(data)
        while pos < n:
            if in_copy:
                probe = tail + data[: len(_END)]
                at = probe.find(_END)
                if pos == 0 and tail and at >= 0 and at + len(_END) > len(tail):
                    end = at + len(_END) - len(tail)
                else:
                    found = data.find(_END, max(pos - 1, 0))
                    end = found + len(_END) if found >= 0 else -1
                if end < 0:
                    yield Piece(entry, kind, table, data[pos:], toc)
                    tail = data[-(len(_END) - 1) :] if n >= len(_END) - 1 else (tail + data)[-(len(_END) - 1) :]
                    pos = n
                    break
                yield Piece(entry, kind, table, data[pos:end], toc)
                in_copy, tail, pos = False, b"", end
                continue
            nl = data.find(b"\n", pos)
            if nl < 0:
                pending = data[pos:]
                break
            line = data[pos : nl + 1]
            m = _TOC_RE.match(line) if line.startswith(b"-- ") and sql.idle else None
            if m:
                entry, kind, table = entry + 1, m.group(2).decode(), None
                toc = (table_name(m.group(3)), table_name(m.group(1)))
            sql, statement = _read_line(sql, line)
            if statement is not None:
                table = copy_table(statement)
                in_copy, tail = True, b"\n"
            yield Piece(entry, kind, table, line, toc)
            pos = nl + 1
    if pending:
        yield Piece(entry, kind, table, pending, toc)
