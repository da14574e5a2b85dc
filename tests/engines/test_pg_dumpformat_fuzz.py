"""The plain dump readers on arbitrary bytes: whatever the chunking, the same answers as fed whole, and no
exception. Bytes are drawn from pg_dump's own tokens (COPY lines, end markers, the trailer) and anything else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbkeeper.engines.postgres import dumpformat
from dbkeeper.engines.postgres.dumpformat import PlainDumpScanner, drop_owner_statements, split_entries

TOKENS = [
    b"\n", b"\\.", b"\\.\n", b"\n\\.\n", b"\\", b".", b"--", b"-- ", b"COPY public.a (id) FROM stdin;\n",
    b'COPY "x""y".b FROM stdin;\n', b"COPY a FROM stdin;", b"COPY  FROM stdin;\n", b"1\t2\n", b"\\N\n",
    b"-- PostgreSQL database dump complete\n", b"-- PostgreSQL database cluster dump complete", b"\r\n",
    b"-- Name: a; Type: TABLE DATA; Schema: public; Owner: app\n", b"-- Name: i; Type: INDEX; Schema: public;\n",
    b"ALTER TABLE public.a OWNER TO app;\n", b"\xff\xfe", b"\x00",
]  # fmt: skip
DUMPS = st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=8)), max_size=40).map(b"".join)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[i:j] for i, j in zip([0, *points], [*points, len(data)], strict=True)]


def scan(chunks: list[bytes]) -> tuple[dict[str, int], bool | None, bool, list[str]]:
    scanner = PlainDumpScanner()
    for chunk in chunks:
        scanner.feed(chunk)
    return scanner.row_counts, scanner.header_ok, scanner.complete, scanner.problems()


def entries(chunks: list[bytes]) -> Iterator[tuple[int, str, str | None, int]]:
    """Which entry, kind and table each byte belongs to."""
    for piece in split_entries(chunks):
        for _ in piece.data:
            yield piece.entry, piece.kind, piece.table, 0


@pytest.fixture
def vectorized(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every chunk through numpy, as large chunks are once it has loaded."""
    dumpformat._load_numpy()
    monkeypatch.setattr(dumpformat, "VECTOR_MIN", 0)


@settings(max_examples=150, deadline=None)
@given(DUMPS, st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_the_scanner_answers_the_same_in_any_chunks(data: bytes, cuts: list[int]) -> None:
    assert scan(chunked(data, cuts)) == scan([data])
    assert scan([data[i : i + 1] for i in range(len(data))]) == scan([data])


def test_the_vectorized_scanner_answers_the_same_in_any_chunks(vectorized: None) -> None:
    test_the_scanner_answers_the_same_in_any_chunks()


@settings(max_examples=150, deadline=None)
@given(DUMPS, st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_split_entries_and_no_owner_answer_the_same_in_any_chunks(data: bytes, cuts: list[int]) -> None:
    parts = chunked(data, cuts)
    assert b"".join(p.data for p in split_entries(parts)) == data
    assert list(entries(parts)) == list(entries([data]))
    assert b"".join(drop_owner_statements(parts)) == b"".join(drop_owner_statements([data]))
