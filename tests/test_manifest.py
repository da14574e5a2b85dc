from datetime import UTC, datetime

import pytest

from dbkeeper import manifest
from dbkeeper.manifest import Manifest

MOMENT = datetime(2026, 11, 27, 2, 0, 0, tzinfo=UTC)


def test_names_follow_design() -> None:
    assert manifest.backup_name("casino", MOMENT, ".sql.gz") == "casino_20261127_020000.sql.gz"
    assert manifest.data_extension("sql", "gzip", False) == ".sql.gz"
    assert manifest.data_extension("sql", "zstd", True) == ".sql.zst.age"
    assert manifest.data_extension("db", "none", False) == ".db"


@pytest.mark.parametrize(
    "name,db,ext",
    [
        ("casino_20261127_020000.sql.gz", "casino", ".sql.gz"),
        ("my_app_db_20261127_020000.db", "my_app_db", ".db"),
        ("casino_20261127_020000.sql.gz.age", "casino", ".sql.gz.age"),
        ("x_20261127_020000.sql.zst", "x", ".sql.zst"),
    ],
)
def test_parse_name(name: str, db: str, ext: str) -> None:
    parsed = manifest.parse_name(name)
    assert parsed is not None
    assert (parsed.database, parsed.stamp, parsed.extension) == (db, MOMENT, ext)


@pytest.mark.parametrize("name", ["casino.sql.gz", "casino_20261127_020000.sql.gz.json", "notes.txt", ".tmp"])
def test_parse_name_rejects_others(name: str) -> None:
    assert manifest.parse_name(name) is None


def test_sha256_line_is_sha256sum_format() -> None:
    line = manifest.sha256_line("ab" * 32, "f.sql.gz")
    assert line == f"{'ab' * 32}  f.sql.gz\n".encode()
    assert manifest.parse_sha256_line(line, "f.sql.gz") == "ab" * 32
    with pytest.raises(ValueError):
        manifest.parse_sha256_line(line, "other.sql.gz")


def make() -> Manifest:
    return Manifest(
        engine="postgresql",
        database="casino",
        file="casino_20261127_020000.sql.gz",
        created_at="2026-11-27T02:00:00Z",
        completed_at="2026-11-27T02:00:12Z",
        duration_s=12.4,
        size_bytes=10,
        sha256="0" * 64,
        compression="gzip",
        encryption=None,
        dump_format="plain",
        row_counts={"public.users": 3000},
    )


def test_manifest_round_trip_keeps_design_fields_first() -> None:
    doc = make()
    text = doc.to_json()
    assert text.startswith(b'{\n  "format": 1,\n  "tool": "dbkeeper ')
    assert Manifest.from_json(text) == doc


@pytest.mark.parametrize(
    "text,error",
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"format": 2}', "format 2"),
        (b'{"format": 1}', "lacks"),
    ],
)
def test_malformed_manifests_are_refused(text: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Manifest.from_json(text)
