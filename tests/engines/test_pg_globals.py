"""The globals file through the one lexer: CREATE ROLE and the rest of what pg_dumpall --globals-only writes are
allowed there and only there; anything else in such a file is refused before a statement reaches a server."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbkeeper.engines.postgres.dumpformat import (
    DumpNotData,
    PlainCheck,
    globals_statements,
    globals_subject,
)
from dbkeeper.errors import ContentRefused

HEAD = b"--\n-- PostgreSQL database cluster dump\n--\n\n\\restrict k3y\n\nSET default_transaction_read_only = off;\n"
TAIL = b"\n\\unrestrict k3y\n\n--\n-- PostgreSQL database cluster dump complete\n--\n\n"
BODY = b"""SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
CREATE ROLE app;
ALTER ROLE app WITH NOSUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:a;b==$c:d';
CREATE ROLE "Odd ""Name";
ALTER ROLE "Odd ""Name" WITH NOLOGIN;
COMMENT ON ROLE app IS 'the app''s role';
ALTER ROLE app SET work_mem TO '8MB';
ALTER ROLE app IN DATABASE shop SET search_path TO 'app';
GRANT reader TO app WITH INHERIT TRUE GRANTED BY postgres;
GRANT reader TO "Odd ""Name" GRANTED BY postgres;
CREATE TABLESPACE fast OWNER postgres LOCATION '/srv/fast';
ALTER TABLESPACE fast SET (random_page_cost='1.1');
GRANT CREATE ON TABLESPACE fast TO app;
"""


def test_what_pg_dumpall_writes_is_read_statement_by_statement() -> None:
    got = [(kind, globals_subject(kind, s)) for kind, s in globals_statements(HEAD + BODY + TAIL)]
    assert got == [
        ("set", ""),
        ("set", ""),
        ("set", ""),
        ("create role", "app"),
        ("alter role", "app"),
        ("create role", 'Odd "Name'),
        ("alter role", 'Odd "Name'),
        ("comment role", "app"),
        ("alter role", "app"),
        ("alter role", "app"),
        ("grant role", "app"),
        ("grant role", 'Odd "Name'),
        ("create tablespace", "fast"),
        ("tablespace", "fast"),
        ("tablespace", "fast"),
    ]
    check = PlainCheck(statements=False, globals_file=True)
    check.feed(HEAD + BODY + TAIL)
    assert check.result() == ({}, [])


def test_create_role_is_refused_in_a_database_dump() -> None:
    check = PlainCheck()
    with pytest.raises(ContentRefused, match="creates or changes a role"):
        check.feed(b"--\nCREATE ROLE app;\n")


@pytest.mark.parametrize(
    "statement",
    [
        b"DROP ROLE app;",
        b"ALTER SYSTEM SET archive_command = 'curl evil';",
        b"COPY t FROM PROGRAM 'id';",
        b"CREATE TABLE t (id int);",
        b"SELECT pg_catalog.set_config('search_path', '', false);",
        b"CREATE ROLE app; DROP DATABASE shop;",
        b"DO $$ BEGIN PERFORM 1; END $$;",
        b"SET ROLE postgres;",
        b"SET standard_conforming_strings = off;",
        b"SET client_encoding = 'SJIS';",
        b"GRANT reader TO app; SELECT 1;",
        b"ALTER DATABASE shop OWNER TO app;",
        b"CREATE ROLE app SUPERUSER;",
    ],
)
def test_anything_else_in_a_globals_file_is_refused(statement: bytes) -> None:
    with pytest.raises(DumpNotData):
        globals_statements(HEAD + statement + b"\n" + TAIL)
    check = PlainCheck(statements=False, globals_file=True)
    with pytest.raises(ContentRefused):
        check.feed(HEAD + statement + b"\n" + TAIL)


def test_a_meta_command_is_refused_in_a_globals_file() -> None:
    with pytest.raises(DumpNotData, match="meta-command"):
        globals_statements(HEAD + b"\\! rm -rf /\n" + TAIL)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([*BODY.splitlines(keepends=True), b"DROP ROLE x;\n", b"'", b"$$", b"\\c x\n"])))
def test_every_kept_statement_is_one_of_the_allowed_kinds(lines: list[bytes]) -> None:
    """Whatever the mix, the reader either refuses the file or returns only statements of an allowed kind."""
    try:
        out = globals_statements(HEAD + b"".join(lines) + TAIL)
    except DumpNotData:
        return
    assert all(
        kind in {"set", "create role", "alter role", "grant role", "comment role", "create tablespace", "tablespace"}
        for kind, _ in out
    )
    assert not any(s.startswith((b"DROP", b"\\")) for _, s in out)
