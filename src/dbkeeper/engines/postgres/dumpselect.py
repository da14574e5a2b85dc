"""Part of a backup: the TOC entries of some tables or schemas, chosen from pg_dump's plain text as it streams
through the one lexer (dumpformat.split_entries), for ``restore --table`` / ``--schema``.

What a selection keeps:

- ``--schema S``: every entry of schema S (and S itself), except foreign keys to tables that are not kept;
- ``--table S.T``: the table, its data, and what is about it alone: its defaults, its owned or identity sequences
  (and their values), its indexes, constraints, comments, privileges, rules and policies; a foreign key only
  when every table it references is kept too. Not its triggers (their functions are not restored with it) nor
  the views over it (they may read other tables): restore the schema for those.

Entries are matched by their TOC comment (``-- Name: T; Type: TABLE; Schema: S``) and, for what belongs to a
table, by the table's name as the dump spells it in their statement (``ON public.users``, ``ALTER TABLE ONLY
public.users``, ``OWNED BY public.users.id``). Pre-data (the schema before any data) is held until it is whole,
since an owned sequence's entry comes before the entry that says who owns it; data streams through; each
post-data entry is held until it ends. The header, the ``SET default_tablespace``/``default_table_access_method``
lines and the dump's closing lines are always kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from dbkeeper.engines.postgres.dumpformat import _IDENT, DATA_TYPES, TRAILER, Piece, split_entries

_QUALIFIED = rb"(" + _IDENT + rb"(?:\." + _IDENT + rb")?)"
_CREATES_TABLE = re.compile(rb"^CREATE (?:UNLOGGED |FOREIGN )?TABLE " + _QUALIFIED, re.MULTILINE)
_REFERENCES = re.compile(rb"\bREFERENCES " + _QUALIFIED)
_TABLE_KINDS = frozenset({"TABLE"})
_NEVER_WITH_A_TABLE = frozenset({"TRIGGER", "VIEW", "MATERIALIZED VIEW", "EVENT TRIGGER"})
_ALWAYS = (b"SET default_tablespace", b"SET default_table_access_method", b"\\unrestrict ", TRAILER)
_ABOUT = rb"(?:^|\s)(?:ON (?:TABLE |ONLY )?|ALTER TABLE (?:ONLY )?|OWNED BY |COMMENT ON (?:TABLE|COLUMN) )"
_PART = re.compile(r'"((?:[^"]|"")*)"|([^".]+)')


def parse_qualified(text: str) -> tuple[str | None, str]:
    """``schema.table`` as SQL spells it (``public.users``, ``"Odd"."Name"``, ``users``) into its parts,
    unquoted (a doubled quote inside quotes is one quote); the schema is None when not given. ValueError for
    anything else."""
    parts: list[str] = []
    pos = 0
    while True:
        m = _PART.match(text, pos)
        if not m:
            raise ValueError(text)
        parts.append(m.group(1).replace('""', '"') if m.group(1) is not None else m.group(2))
        pos = m.end()
        if pos == len(text):
            break
        if text[pos] != "." or len(parts) == 2:
            raise ValueError(text)
        pos += 1
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


@dataclass(frozen=True)
class Selection:
    """Tables as (schema, name) and schemas, unquoted, as the dump's TOC comments name them."""

    tables: frozenset[tuple[str, str]] = frozenset()
    schemas: frozenset[str] = frozenset()


@dataclass
class _Entry:
    kind: str
    toc: tuple[str, str]
    pieces: list[Piece] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(p.data for p in self.pieces)


class Selector:
    """Feed it the pieces of split_entries; it gives back the pieces to keep. After the last piece, ``kept``
    holds the (kind, schema, name) of every entry kept, ``tables`` the (schema, name) of every table kept and
    ``sequences`` those of every sequence (what a TOC list for pg_restore is built from)."""

    def __init__(self, selection: Selection) -> None:
        self.selection = selection
        self.kept: set[tuple[str, str, str]] = set()
        self.tables: set[tuple[str, str]] = set()
        self.sequences: set[tuple[str, str]] = set()
        self._spelled: set[bytes] = set()  # the kept tables as the dump spells them in statements
        self._section = "pre"
        self._pre: list[_Entry] = []
        self._post: _Entry | None = None
        self._about: re.Pattern[bytes] | None = None

    def feed(self, piece: Piece) -> list[Piece]:
        if piece.entry == 0:
            return [piece]
        if self._section == "pre" and piece.kind in DATA_TYPES:
            schema = self._resolve_pre()
            self._section = "data"
            return schema + self._data(piece)
        if self._section == "data" and piece.kind not in DATA_TYPES:
            self._section = "post"
        if self._section == "pre":
            if not self._pre or self._pre[-1].pieces[0].entry != piece.entry:
                self._pre.append(_Entry(piece.kind, piece.toc))
            self._pre[-1].pieces.append(piece)
            return []
        if self._section == "data":
            return self._data(piece)
        out: list[Piece] = []
        if self._post is not None and self._post.pieces[0].entry != piece.entry:
            out = self._decide_post(self._post)
            self._post = None
        if self._post is None:
            self._post = _Entry(piece.kind, piece.toc)
        self._post.pieces.append(piece)
        return out

    def close(self) -> list[Piece]:
        """What is still held when the stream ends."""
        out = self._resolve_pre() if self._section == "pre" else []
        if self._post is not None:
            out += self._decide_post(self._post)
            self._post = None
        return out

    # -- the rules ---------------------------------------------------------------------------------------------
    def _in_schema(self, entry: _Entry) -> bool:
        schema, name = entry.toc
        schemas = self.selection.schemas
        return (
            schema in schemas
            or (entry.kind == "SCHEMA" and name in schemas)
            or (entry.kind in ("COMMENT", "ACL") and name.startswith("SCHEMA ") and name[7:] in schemas)
        )

    def _about_kept_table(self, body: bytes) -> bool:
        """The entry's statement is about a kept table: ``ON [TABLE|ONLY] t``, ``ALTER TABLE [ONLY] t``,
        ``OWNED BY t.col``, ``COMMENT ON COLUMN t.col`` (not a function body that merely reads it)."""
        if self._about is None:
            names = b"|".join(re.escape(s) for s in sorted(self._spelled, key=len, reverse=True))
            self._about = re.compile(_ABOUT + rb"(?:" + (names or rb"(?!)") + rb')(?![\w$"])')
        return self._about.search(body) is not None

    def _references_ok(self, body: bytes) -> bool:
        return all(m.group(1) in self._spelled for m in _REFERENCES.finditer(body))

    def _resolve_pre(self) -> list[Piece]:
        entries, self._pre = self._pre, []
        for e in entries:
            if e.kind in _TABLE_KINDS and (self._in_schema(e) or e.toc in self.selection.tables):
                self.tables.add(e.toc)
                m = _CREATES_TABLE.search(e.body)
                if m:
                    self._spelled.add(m.group(1))
        keep = [self._keep(e) for e in entries]
        owned = {e.toc for e, k in zip(entries, keep, strict=True) if k and e.kind == "SEQUENCE OWNED BY"}
        out: list[Piece] = []
        for e, k in zip(entries, keep, strict=True):
            if k or (e.kind == "SEQUENCE" and e.toc in owned):
                if e.kind == "SEQUENCE":
                    self.sequences.add(e.toc)
                self.kept.add((e.kind, *e.toc))
                out += e.pieces
            else:
                out += [p for p in e.pieces if p.data.startswith(_ALWAYS)]
        return out

    def _keep(self, e: _Entry) -> bool:
        if e.kind == "FK CONSTRAINT" and not self._references_ok(e.body):
            return False
        if self._in_schema(e):
            return True
        if e.kind in _TABLE_KINDS:
            return e.toc in self.selection.tables
        if e.kind in _NEVER_WITH_A_TABLE:
            return False
        return self._about_kept_table(e.body)

    def _data(self, piece: Piece) -> list[Piece]:
        if piece.kind == "TABLE DATA":
            keep = piece.toc in self.tables
        elif piece.kind == "SEQUENCE SET":
            keep = piece.toc in self.sequences
        else:  # large objects belong to no table
            keep = False
        if keep:
            self.kept.add((piece.kind, *piece.toc))
            return [piece]
        return [piece] if piece.table is None and piece.data.startswith(_ALWAYS) else []

    def _decide_post(self, e: _Entry) -> list[Piece]:
        if self._keep(e):
            self.kept.add((e.kind, *e.toc))
            return e.pieces
        return [p for p in e.pieces if p.data.startswith(_ALWAYS)]


def select(chunks: Iterable[bytes], selection: Selection, selector: Selector | None = None) -> Iterator[bytes]:
    """The bytes of a plain dump that ``selection`` keeps (see the module docstring), streaming."""
    chosen = selector or Selector(selection)
    for piece in split_entries(chunks):
        out = chosen.feed(piece)
        if out:
            yield b"".join(p.data for p in out)
    rest = chosen.close()
    if rest:
        yield b"".join(p.data for p in rest)


def toc_list(listing: str, selector: Selector) -> str:
    """The lines of ``pg_restore -l`` that the selector kept (its ``kept``, ``tables`` and ``sequences``, found
    by reading the archive's schema through ``select``), for ``pg_restore -L``."""
    wanted = {f"{kind} {schema} {name}" for kind, schema, name in selector.kept}
    wanted |= {f"TABLE DATA {schema} {name}" for schema, name in selector.tables}
    wanted |= {f"SEQUENCE SET {schema} {name}" for schema, name in selector.sequences}
    out = []
    for line in listing.splitlines():
        if line.startswith(";") or "; " not in line:
            continue
        rest = line.split("; ", 1)[1].split(" ", 2)[2] if line.count(" ") >= 3 else ""
        head, _, owner = rest.rpartition(" ")
        if head in wanted and owner:
            out.append(line)
    return "\n".join(out) + "\n"
