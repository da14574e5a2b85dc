"""The store layout: set names per source, the legacy flat names, and the sha256sum sidecar."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbkeeper.repo import names

MOMENT = datetime(2026, 11, 27, 2, 0, 0, tzinfo=UTC)


def test_new_names_sit_in_their_source_directory_and_keep_the_readable_file_name() -> None:
    name = names.new_name("casino-eu", "casino", MOMENT, ".sql.gz")
    assert name.name == "casino-eu/casino_20261127_020000.sql.gz"
    assert names.new_name("casino-eu", "casino", MOMENT, ".sql.gz", seq=2).name == (
        "casino-eu/casino_20261127_020000-2.sql.gz"
    )
    assert names.new_name("x", "app db/../é", MOMENT, ".db").file == "app_db_..___20261127_020000.db"
    assert names.new_name("x", "..", MOMENT, ".db").file == "db_20261127_020000.db"
    assert names.data_extension("sql", "zstd", True) == ".sql.zst.age"
    assert names.data_extension("db", "none", False) == ".db"


@pytest.mark.parametrize(
    "name,source,label,seq,ext",
    [
        ("casino-eu/casino_20261127_020000.sql.gz", "casino-eu", "casino", 1, ".sql.gz"),
        ("casino-eu/casino_20261127_020000-3.sql.gz.age", "casino-eu", "casino", 3, ".sql.gz.age"),
        ("casino_20261127_020000.sql.gz", None, "casino", 1, ".sql.gz"),  # the legacy layout
        ("my_app_db_20261127_020000.db", None, "my_app_db", 1, ".db"),
        ("s/casino.globals_20261127_020000.sql.gz", "s", "casino.globals", 1, ".sql.gz"),
    ],
)
def test_parse(name: str, source: str | None, label: str, seq: int, ext: str) -> None:
    parsed = names.parse(name)
    assert parsed is not None
    assert (parsed.source_id, parsed.label, parsed.started, parsed.seq, parsed.extension) == (
        source,
        label,
        MOMENT,
        seq,
        ext,
    )
    assert parsed.name == name


@pytest.mark.parametrize(
    "name",
    [
        "casino.sql.gz",
        "casino_20261127_020000.sql.gz.json",
        "notes.txt",
        ".tmp",
        "a/b/casino_20261127_020000.sql.gz",  # one level only
        "-x/casino_20261127_020000.sql.gz",  # not a source id
        "casino_20261399_020000.sql.gz",  # not a date
        "casino_20261127_020000-0.sql.gz",
        # Names that would parse to another name: the catalog looks the set up by the name parse gives back.
        "casino_20261127_020000-1.sql.gz",  # the first set of a second has no number
        "casino_20261127_020000-01.sql.gz",
        "casino_20261127_020000.sql.gz\n",  # a trailing newline (a regex's "$" lets it through)
        "casino\n/casino_20261127_020000.sql.gz",
        "casino_00010101_000000.sql.gz",  # year 1: strftime writes "1", not "0001"
    ],
)
def test_parse_rejects_others(name: str) -> None:
    assert names.parse(name) is None


@given(st.text(max_size=80))
def test_parse_never_raises_and_round_trips(text: str) -> None:
    parsed = names.parse(text)
    if parsed is not None:
        assert parsed.name == text


def test_sha256_line_names_the_file_beside_it() -> None:
    line = names.sha256_line("ab" * 32, "casino-eu/f.sql.gz")
    assert line == f"{'ab' * 32}  f.sql.gz\n".encode()  # sha256sum -c, run in the source's directory
    assert names.parse_sha256_line(line, "casino-eu/f.sql.gz") == "ab" * 32
    with pytest.raises(ValueError):
        names.parse_sha256_line(line, "casino-eu/other.sql.gz")
    with pytest.raises(ValueError):
        names.parse_sha256_line(b"x" * 5000, "casino-eu/f.sql.gz")


def test_files_are_in_deletion_order() -> None:
    assert names.files("s/a.db") == ("s/a.db.json", "s/a.db.sha256", "s/a.db")


def test_a_long_databases_roles_keep_their_suffix() -> None:
    """PostgreSQL allows 63-character names; cut at 64, ``<db>.globals`` lost its suffix and the roles' series
    was named like the database's (status, metrics and the drill log then showed two series under one name)."""
    db = "d" * 63
    roles = names.new_name("s", db + ".globals", MOMENT, ".sql.gz")
    assert roles.label.endswith(".globals") and len(roles.label) <= 64
    assert roles.label != names.file_label(db)
    assert names.file_label("casino.globals") == "casino.globals"
    assert names.file_label("é" * 70) == "_" * 64
