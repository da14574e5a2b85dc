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


# -- a dump is data, not a script -------------------------------------------------------------------------------

_HEAD = (
    "--\n-- PostgreSQL database dump\n--\n\nSET standard_conforming_strings = on;\n"
    "SELECT pg_catalog.set_config('search_path', '', false);\n"
)
_TAIL = "\n--\n-- PostgreSQL database dump complete\n--\n\n"


def _scan_all_ways(text: str) -> PlainDumpScanner:
    """Scan ``text`` in chunks of 1, 3, 7 and 1000 bytes; every chunking must read it the same."""
    found = []
    for size in (1, 3, 7, 1000):
        scanner = PlainDumpScanner()
        data = text.encode()
        for i in range(0, len(data), size):
            scanner.feed(data[i : i + size])
        found.append((scanner.row_counts, scanner.complete, scanner.not_data))
    assert all(f == found[0] for f in found), found
    return scanner


@pytest.mark.parametrize(
    "body,why",
    [
        ("\\! id > /tmp/owned\n", "line 7: a psql meta-command: \\! id > /tmp/owned"),
        ("SELECT 1 \\! id\n;\n", "a psql meta-command: \\! id"),
        ("\\connect prod\nDROP TABLE orders;\n", "a psql meta-command: \\connect prod"),
        ("CREATE ROLE evil SUPERUSER;\n", "creates or changes a role"),
        ("ALTER ROLE app SUPERUSER;\n", "creates or changes a role"),
        ("COPY (SELECT 1) TO PROGRAM 'id > /tmp/owned';\n", "copies to or from anything but the dump"),
        ("COPY t FROM '/etc/passwd';\n", "copies to or from anything but the dump"),
        ("ALTER SYSTEM SET archive_command = 'id';\n", "changes the server's configuration"),
        ("GRANT pg_read_server_files TO app;\n", "grants or revokes a role membership"),
        ("SELECT pg_read_file('/etc/passwd');\n", "a query pg_dump never writes"),
        ("DO $$ BEGIN PERFORM 1; END $$;\n", "a command pg_dump never writes"),
        ("DROP TABLE orders;\n", "a command pg_dump never writes"),
        ("SET standard_conforming_strings = off;\n", "turns standard_conforming_strings off"),
        ("SET client_encoding = 'SJIS';\n", "a backslash can hide"),
        ("SET ROLE postgres;\n", "switches roles"),
        ("COPY public.t (id) FROM stdin; SELECT 1;\n1\n\\.\n", "more follows COPY"),
        # A SQL-standard body ends where the server ends it: at the END matching BEGIN ATOMIC (CASE … END counted);
        # what follows is judged, however psql groups it (psql also counts a bare word "begin").
        (
            "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n SELECT begin FROM public.t;\nEND;\n"
            "DROP TABLE orders;\nSELECT 1; END;\n",
            "line 11: a statement that runs a command pg_dump never writes: DROP TABLE orders;",
        ),
        (
            "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n SELECT CASE WHEN true THEN 1 END;\n"
            "END; DROP TABLE orders;\n",
            "a statement that runs a command pg_dump never writes: DROP TABLE orders;",
        ),
        # "begin atomic" inside the parentheses is a parameter and its type: no body starts there.
        (
            "CREATE FUNCTION public.f(begin atomic) RETURNS int LANGUAGE sql RETURN 1; DROP TABLE orders; END;\n",
            "a statement that runs a command pg_dump never writes: DROP TABLE orders;",
        ),
        # Only a routine has a body: elsewhere BEGIN ATOMIC hides nothing.
        ("CREATE TABLE public.x (id int); BEGIN ATOMIC; DROP TABLE orders; END;\n", "pg_dump never writes"),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n\\! id\nEND;\n", "a psql meta-command: \\! id"),
    ],
)
def test_what_pg_dump_never_writes_is_named_with_its_line(body: str, why: str) -> None:
    assert why in str(_scan_all_ways(_HEAD + body + _TAIL).not_data)


@pytest.mark.parametrize(
    "body",
    [
        "COPY public.t (id) FROM stdin;\n1\n\\! in the data is data\n\\.\n",
        "COMMENT ON TABLE public.t IS 'x; \\! in a string is text';\n",
        "COMMENT ON TABLE public.t IS E'it''s \\' \\\\ fine';\n",
        'CREATE TABLE "we;ird\\" (id int);\n',
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$\nSELECT 1; \\! not psql's\n$body$;\n",
        "/* a \\! comment\n /* nested; */ still */ CREATE TABLE t2 (id int);\n",
        "-- a \\! comment line\nGRANT SELECT ON TABLE public.t TO app;\n",
        "SELECT pg_catalog.setval('public.s', 5, true);\nSELECT pg_catalog.lo_create('16385');\n",
        "\\restrict abcDEF123\n",
        # pg_dump 14+ writes a SQL-standard body as it was written: statements with their ';' inside the CREATE.
        "CREATE FUNCTION public.total(p integer) RETURNS numeric\n    LANGUAGE sql\n    BEGIN ATOMIC\n"
        " SELECT sum(accounts.balance) AS sum\n    FROM public.accounts\n   WHERE (accounts.id <> total.p);\n"
        ' SELECT CASE WHEN (1 = 1) THEN 1 ELSE 2 END AS "case";\nEND;\n'
        "CREATE OR REPLACE PROCEDURE public.p() LANGUAGE sql BEGIN ATOMIC INSERT INTO public.t VALUES (1); END;\n"
        "CREATE TABLE public.after (id int);\n",
    ],
)
def test_what_pg_dump_writes_is_data(body: str) -> None:
    assert _scan_all_ways(_HEAD + body + _TAIL).not_data is None


def test_a_comment_holding_a_copy_line_is_text_not_a_table() -> None:
    forged = (
        "COMMENT ON TABLE public.t IS 'look:\nCOPY public.users (id) FROM stdin;\n1\n2\n\\.\n';\n"
        "COPY public.t (id) FROM stdin;\n7\n\\.\n"
    )
    scanner = _scan_all_ways(_HEAD + forged + _TAIL)
    assert scanner.row_counts == {"public.t": 1} and scanner.complete and scanner.not_data is None


def test_the_check_refuses_before_the_chunk_goes_on() -> None:
    from dbkeeper.engines.postgres.dumpformat import PlainCheck
    from dbkeeper.errors import ContentRefused

    check = PlainCheck()
    check.feed(_HEAD.encode())
    with pytest.raises(ContentRefused, match="not only data: line 7: a psql meta-command"):
        check.feed(b"\\! id\n")


def test_pg_dumpall_roles_are_not_judged_as_statements() -> None:
    scanner = PlainDumpScanner(statements=False)
    scanner.feed((_HEAD + "CREATE ROLE app;\nALTER ROLE app WITH LOGIN;\n" + _TAIL).encode())
    assert scanner.not_data is None


def test_a_toc_line_inside_a_string_starts_no_entry() -> None:
    from dbkeeper.engines.postgres.dumpformat import split_entries

    dump = (
        _HEAD + "--\n-- Name: t; Type: TABLE; Schema: public; Owner: app\n--\n\nCREATE TABLE public.t (id int);\n"
        "COMMENT ON TABLE public.t IS 'x\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: app\n';\n"
        "--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: app\n--\n\n"
        "COPY public.t (id) FROM stdin;\n1\n\\.\n" + _TAIL
    ).encode()
    for size in (1, 5, 1000):
        pieces = list(split_entries(dump[i : i + size] for i in range(0, len(dump), size)))
        kinds = {p.entry: p.kind for p in pieces}
        assert kinds == {0: "", 1: "TABLE", 2: "TABLE DATA"}
        assert b"".join(p.data for p in pieces) == dump
        assert {p.table for p in pieces if p.table} == {"public.t"}
        assert all(p.entry == 2 for p in pieces if p.table)


def test_no_owner_keeps_an_owner_line_inside_a_function_body() -> None:
    dump = (
        _HEAD + "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n"
        "ALTER TABLE t OWNER TO app;\nEND $$;\nALTER TABLE public.t OWNER TO app;\n" + _TAIL
    ).encode()
    kept = b"".join(drop_owner_statements(dump[i : i + 7] for i in range(0, len(dump), 7)))
    assert b"ALTER TABLE t OWNER TO app;\n" in kept  # the function's own text
    assert b"ALTER TABLE public.t OWNER TO app;\n" not in kept  # the statement
