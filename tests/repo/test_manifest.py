"""The manifest schema: one reader that refuses anything off-schema with a reason, and never raises otherwise."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbkeeper.repo.manifest import Manifest, ManifestError


def make(**changes: Any) -> Manifest:
    doc = Manifest(
        engine="postgresql",
        source_id="casino-eu",
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
        extra={"lc_collate": "C"},
    )
    for key, value in changes.items():
        setattr(doc, key, value)
    return doc


def as_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(make().to_json())
    doc.update(changes)
    return doc


def test_round_trip_with_the_version_first() -> None:
    doc = make()
    text = doc.to_json()
    assert text.startswith(b'{\n  "format_version": 2,\n  "tool": "dbkeeper ')
    assert Manifest.from_json(text) == doc
    assert doc.name == "casino-eu/casino_20261127_020000.sql.gz"


def test_format_1_manifests_of_the_legacy_layout_still_read() -> None:
    old = as_doc(format=1)
    del old["format_version"], old["source_id"]
    doc = Manifest.from_json(json.dumps(old).encode())
    assert doc.format_version == 1 and doc.source_id is None
    assert doc.name == "casino_20261127_020000.sql.gz"


@pytest.mark.parametrize(
    "changes,error",
    [
        ({"created_at": 1700000000}, "created_at is 1700000000, not a UTC time"),
        ({"created_at": None}, "lacks created_at"),
        ({"created_at": "2026-02-30T00:00:00Z"}, "not a valid time"),
        ({"row_counts": [1, 2]}, "row_counts is list, not an object"),
        ({"row_counts": {"t": -1}}, 'row_counts\\["t"\\] is -1'),
        ({"row_counts": {"t": True}}, "is true, not a count"),
        ({"row_counts": {"t": 1.5}}, "is 1.5, not a count"),
        ({"extra": "x"}, 'extra is "x", not an object'),
        ({"size_bytes": "10"}, 'size_bytes is "10"'),
        ({"size_bytes": 2**70}, "not a count"),
        ({"sha256": "z" * 64}, "not a SHA-256"),
        ({"sha256": "ab" * 32 + "\n"}, "not a SHA-256"),  # "$" in a pattern lets a trailing newline through
        ({"source_id": "casino-eu\n"}, "not a source id"),
        ({"engine": "mysql"}, "not one of postgresql, sqlite"),
        ({"compression": "bzip2"}, "compression"),
        ({"file": "../etc/passwd"}, "not a file name"),
        ({"file": "x.db.gz\nok  app/app_20261127_020000.db.gz"}, "not a file name"),  # a forged line in list
        ({"file": "x\x1b[2J.db.gz"}, "not a file name"),
        ({"source_id": "../x"}, "not a source id"),
        ({"source_id": None}, "lacks source_id"),
        ({"encryption": {"format": "age", "recipients": []}}, "encryption"),
        ({"encryption": "age"}, "encryption"),
        ({"source": {"host": {"nested": 1}}}, "source.host is dict"),
        ({"duration_s": -1}, "duration_s"),
        ({"format_version": 3}, "newer than this dbkeeper reads: upgrade"),
        ({"format_version": "2"}, "not a format dbkeeper wrote"),
        ({"format_version": True}, "not a format dbkeeper wrote"),
    ],
)
def test_off_schema_fields_are_refused_by_name(changes: dict[str, Any], error: str) -> None:
    with pytest.raises(ManifestError, match=error):
        Manifest.from_json(json.dumps(as_doc(**changes)).encode())


@pytest.mark.parametrize(
    "text,error",
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"format_version": 2, "size_bytes": NaN}', "not usable JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not usable JSON"),
        (b'{"a":' * 40 + b"1" + b"}" * 40, "nested deeper"),
        (b'{"x": 1' + b"0" * 5000 + b"}", "not usable JSON"),
        (b" " * (17 << 20), "larger than 16 MiB"),
    ],
)
def test_malformed_documents_are_refused(text: bytes, error: str) -> None:
    with pytest.raises(ManifestError, match=error):
        Manifest.from_json(text)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(sorted(as_doc())), _json, max_size=8))
def test_any_change_to_a_manifest_reads_or_is_refused_with_a_reason(changes: dict[str, Any]) -> None:
    text = json.dumps(as_doc(**changes)).encode()
    try:
        doc = Manifest.from_json(text)
    except ManifestError as exc:
        assert str(exc)
        return
    # What reads is typed as the schema says, whatever the input was.
    assert isinstance(doc.size_bytes, int) and doc.size_bytes >= 0
    assert all(type(n) is int and n >= 0 for n in doc.row_counts.values())
    assert isinstance(doc.extra, dict) and isinstance(doc.source, dict)
    doc.created  # noqa: B018 - parses


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_else(data: bytes) -> None:
    with contextlib.suppress(ManifestError):
        Manifest.from_json(data)
