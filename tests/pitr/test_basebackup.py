"""backup.json: parsed once, checked, and a forged or damaged one is refused with the reason."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbkeeper.errors import CheckFailed
from dbkeeper.pitr.basebackup import BaseBackup, StoredObject, backup_id

T = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def _doc(**over: object) -> BaseBackup:
    base = dict(
        id=backup_id(T, "full"), kind="full", parent=None, label="l", source_id="main", archive_id="1-15",
        pg_version="15.18", pg_major=15, system_identifier=1, wal_segment_size=16 << 20, timeline=1,
        start_lsn=(2 << 24) + 40, stop_lsn=(3 << 24) + 8, start_time=T, stop_time=T, created_at=T, duration_s=1.0,
        wal_ranges=((1, (2 << 24) + 40, (3 << 24) + 8),),
        objects=(StoredObject("base.tar.zst", 10, "a" * 64, 20), StoredObject("backup_manifest.zst", 5, "b" * 64, 9)),
        manifest_checksum="c", compression="zstd", recipients=(), wal_verified=True,
    )  # fmt: skip
    base.update(over)
    return BaseBackup(**base)  # type: ignore[arg-type]


def test_round_trip_and_segments() -> None:
    doc = _doc()
    again = BaseBackup.from_bytes(doc.to_bytes())
    assert again == doc
    shown = json.loads(doc.to_bytes())
    assert shown["start_segment"] == "000000010000000000000002"
    assert shown["stop_segment"] == "000000010000000000000003"
    assert doc.segment_ranges() == [(1, 2, 3)]
    assert doc.object("base.tar").name == "base.tar.zst"


def test_a_stop_lsn_on_a_segment_boundary_needs_only_the_segment_before() -> None:
    doc = _doc(stop_lsn=3 << 24, wal_ranges=((1, (2 << 24) + 40, 3 << 24),))
    assert doc.stop_segno == 2 and doc.segment_ranges() == [(1, 2, 2)]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"format": 2}, "format"),
        ({"kind": "incremental"}, "impossible backup"),
        ({"id": "../../x"}, "impossible backup"),
        ({"objects": [{"name": "../x", "size": 1, "sha256": "a" * 64, "raw_size": 1}]}, "impossible object"),
        ({"wal_segment_size": 3}, "impossible WAL range"),
        ({"start_time": "2026-11-30T03:00:00"}, "time zone"),
        ({"stop_lsn": "0/1"}, "impossible WAL range"),
    ],
)
def test_forged_or_damaged_backup_json_is_refused(change: dict[str, object], why: str) -> None:
    raw = json.loads(_doc().to_bytes())
    raw.update(change)
    with pytest.raises(CheckFailed, match=why):
        BaseBackup.from_bytes(json.dumps(raw).encode())


@given(st.binary(max_size=500))
def test_any_bytes_are_a_backup_json_or_a_clean_refusal(data: bytes) -> None:
    with contextlib.suppress(CheckFailed):
        BaseBackup.from_bytes(data)
