import random
import threading

import pytest

from dbkeeper.engines.postgres import dumpformat
from dbkeeper.engines.postgres.dumpformat import PlainDumpScanner, drop_owner_statements

DUMP = b"""--
-- PostgreSQL database dump
--

\\restrict k3y

SET statement_timeout = 0;
CREATE TABLE public.a (id integer, t text);
ALTER TABLE public.a OWNER TO app;
ALTER SCHEMA "Odd" OWNER TO "Some Role";
COPY public.a (id, t) FROM stdin;
1\tfoo
2\tmulti\\nline
3\t\\\\.
4\t\\N
\\.

COPY public."Weird ""T"" (x)" (id) FROM stdin;
\\.

COPY "Odd".b FROM stdin;
ALTER TABLE public.a OWNER TO app;
\\.

--
-- PostgreSQL database dump complete
--

\\unrestrict k3y

"""
COUNTS = {"public.a": 4, 'public."Weird ""T"" (x)"': 0, '"Odd".b': 1}


def split_randomly(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), rng.randint(0, 40)))
    return [data[i:j] for i, j in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@pytest.mark.parametrize("seed", range(300))
def test_counts_rows_whatever_the_chunking(seed: int) -> None:
    scanner = PlainDumpScanner()
    for part in split_randomly(DUMP, random.Random(seed)):
        scanner.feed(part)
    assert scanner.row_counts == COUNTS
    assert scanner.problems() == []


@pytest.fixture
def vectorized(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every chunk through numpy, as large chunks are once it has loaded."""
    dumpformat._load_numpy()
    monkeypatch.setattr(dumpformat, "VECTOR_MIN", 0)


@pytest.mark.parametrize("seed", range(300))
def test_vectorized_scan_counts_the_same(seed: int, vectorized: None) -> None:
    scanner = PlainDumpScanner()
    for part in split_randomly(DUMP, random.Random(seed)):
        scanner.feed(part)
    assert scanner.row_counts == COUNTS
    assert scanner.problems() == []


@pytest.mark.parametrize("rows", [0, 1, 5000])
def test_large_chunks_count_the_same_before_and_after_numpy_loads(rows: int, vectorized: None) -> None:
    body = b"".join(b"%d\tline with a \\\\. and \\N and a dot.\n" % i for i in range(rows))
    dump = DUMP.replace(b"1\tfoo\n", b"1\tfoo\n" + body)
    expected = {**COUNTS, "public.a": COUNTS["public.a"] + rows}
    for size in (7, 4096, len(dump)):
        scanner = PlainDumpScanner()
        for i in range(0, len(dump), size):
            scanner.feed(dump[i : i + size])
        assert scanner.row_counts == expected, size
        assert scanner.problems() == []


def test_a_large_chunk_starts_loading_numpy_and_is_scanned_meanwhile(monkeypatch: pytest.MonkeyPatch) -> None:
    started = []
    monkeypatch.setattr(dumpformat, "_numpy", None)
    monkeypatch.setattr(dumpformat, "_numpy_started", False)
    monkeypatch.setattr(dumpformat, "VECTOR_MIN", len(DUMP) // 2)
    monkeypatch.setattr(dumpformat, "_load_numpy", lambda: started.append(True))
    scanner = PlainDumpScanner()
    scanner.feed(DUMP[:100])
    assert not started  # a small chunk does not need numpy
    scanner.feed(DUMP[100:])
    assert scanner.row_counts == COUNTS and scanner.problems() == []
    for _ in range(100):
        if started:
            break
        threading.Event().wait(0.01)
    assert started == [True]


def test_trailer_is_not_the_last_line_since_15_14() -> None:
    scanner = PlainDumpScanner()
    scanner.feed(DUMP)
    assert scanner.complete and DUMP.rstrip().endswith(b"\\unrestrict k3y")


@pytest.mark.parametrize("cut", [60, 200, 320, len(DUMP) - 60])
def test_truncated_dump_is_reported(cut: int) -> None:
    scanner = PlainDumpScanner()
    scanner.feed(DUMP[:cut])
    assert any("cut short" in p or "ends inside" in p for p in scanner.problems())


def test_dump_without_header_is_reported() -> None:
    scanner = PlainDumpScanner()
    scanner.feed(b"SELECT 1;\n" + DUMP)
    assert "header" in " ".join(scanner.problems())


def test_empty_dump_is_reported() -> None:
    assert PlainDumpScanner().problems() == ["the dump is empty"]


@pytest.mark.parametrize("seed", range(50))
def test_no_owner_drops_owner_lines_outside_copy_data_only(seed: int) -> None:
    out = b"".join(drop_owner_statements(split_randomly(DUMP, random.Random(seed))))
    assert b"ALTER SCHEMA" not in out
    assert out.count(b"ALTER TABLE public.a OWNER TO app;") == 1  # the one inside COPY data stays
    assert out == DUMP.replace(b'ALTER TABLE public.a OWNER TO app;\nALTER SCHEMA "Odd" OWNER TO "Some Role";\n', b"")
