import random

import pytest

from dbkeeper.engines.pgplain import PlainDumpScanner, drop_owner_statements

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
