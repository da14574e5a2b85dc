"""Reading pg_dump's plain SQL format as it streams past, without holding it.

A plain dump is SQL with the table data in ``COPY … FROM stdin;`` blocks: one row per line in COPY text format
(newlines inside values are escaped as ``\\n``), ended by a line ``\\.``. Counting the lines of each block gives
exact row counts for the snapshot the dump holds. The same pass checks the header (the first line is an SQL
comment) and the trailer ``-- PostgreSQL database dump complete``; since 15.14/16.10/17.6 pg_dump writes
``\\restrict``/``\\unrestrict`` lines around the body, so the trailer is no longer the last line.

Work per byte is ``memchr``-speed inside COPY data (``bytes.find``/``bytes.count``); only the SQL between blocks
is split into lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

TRAILER = b"-- PostgreSQL database dump complete"
_IDENT = rb'(?:"(?:[^"]|"")*"|[^\s".(]+)'
_COPY_RE = re.compile(rb"^COPY (" + _IDENT + rb"(?:\." + _IDENT + rb")*)(?: \(.*\))? FROM stdin;$", re.DOTALL)
_OWNER_RE = re.compile(rb"^ALTER [A-Z ]+ .+ OWNER TO .+;$")
_END = b"\n\\.\n"


class PlainDumpScanner:
    """Feed it the dump's bytes in any chunking; read ``row_counts``, ``header_ok`` and ``complete`` after."""

    def __init__(self) -> None:
        self.row_counts: dict[str, int] = {}
        self.header_ok: bool | None = None
        self.complete = False
        self._table: str | None = None
        self._rows = 0
        # Invariant: self._buf[0:1] == b"\n", the end of the last line already handled.
        self._buf = b"\n"
        self.bytes_seen = 0
        self._head = b""

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.header_ok is None:
            self._head += chunk[:2]
            if len(self._head) >= 2:
                self.header_ok = self._head.startswith(b"--")
        self.bytes_seen += len(chunk)
        data = self._buf + chunk
        pos = 1
        n = len(data)
        while pos < n:
            if self._table is not None:
                end = data.find(_END, pos - 1)
                if end < 0:
                    last_nl = data.rfind(b"\n", pos - 1)
                    self._rows += data.count(b"\n", pos, last_nl + 1)
                    self._buf = data[last_nl:]
                    return
                self._rows += data.count(b"\n", pos, end + 1)
                self.row_counts[self._table] = self.row_counts.get(self._table, 0) + self._rows
                self._table, self._rows = None, 0
                pos = end + len(_END)
                continue
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            self._line(data[pos:nl])
            pos = nl + 1
        self._buf = data[pos - 1 :]

    def _line(self, line: bytes) -> None:
        if line.startswith(b"COPY ") and line.endswith(b" FROM stdin;"):
            m = _COPY_RE.match(line)
            if m:
                self._table = m.group(1).decode("utf-8", "replace")
                self._rows = 0
        elif line.startswith(TRAILER):
            self.complete = True

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
        return out


def scan(chunks: Iterable[bytes], scanner: PlainDumpScanner) -> Iterator[bytes]:
    """Pass chunks through, feeding the scanner on the way."""
    for chunk in chunks:
        scanner.feed(chunk)
        yield chunk


def drop_owner_statements(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``--no-owner`` for a plain dump: drop the ``ALTER … OWNER TO …;`` lines outside COPY data.

    pg_restore has the option for archives; psql has none, so the filter does what pg_dump -O would have done.
    """
    in_copy = False
    pending = b""
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
            elif line.startswith(b"COPY ") and line.endswith(b" FROM stdin;\n"):
                in_copy = True
            elif line.startswith(b"ALTER ") and _OWNER_RE.match(line.rstrip(b"\n")):
                continue
            out.append(line)
        yield b"".join(out)
    if pending:
        yield pending
