"""Drill records in the store: written if absent, read back oldest first, and whatever else is there (a forged,
oversized or misfiled record) skipped rather than believed or fatal."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbkeeper.repo import DrillRecord, Repository, drills
from dbkeeper.repo.drills import MAX_BYTES
from dbkeeper.signing import generate, parse_verify_key
from dbkeeper.storage.local import LocalStore

GOOD = DrillRecord("app", "app", "2026-11-20T04:00:00Z", "PASS", backup="app/app_20261119_020000.db.gz", host="ops1")


def test_round_trip_and_order(tmp_path: Path) -> None:
    repo = Repository(LocalStore(tmp_path))
    later = DrillRecord("app", "app", "2026-11-27T04:00:00Z", "FAIL", anomalies="smoke 1: 0 rows", restore_seconds=1.5)
    other = DrillRecord("shop", "shop", "2026-11-21T04:00:00Z", "PASS")
    for record in (later, GOOD, other):
        name = drills.put(repo.store, record)
        assert name.startswith(f"drills/{record.source_id}/{record.started:%Y%m%d_%H%M%S}-")
    found = repo.drill_records().records
    assert [(r.source_id, r.date, r.result) for r in found] == [
        ("app", GOOD.date, "PASS"),
        ("shop", other.date, "PASS"),
        ("app", later.date, "FAIL"),
    ]
    assert found[2].restore_seconds == 1.5 and found[2].anomalies == "smoke 1: 0 rows"
    assert [r.source_id for r in repo.drill_records("shop").records] == ["shop"]
    # Not a backup set: the catalog of the same store holds nothing.
    assert repo.scan(datetime.now(UTC)).entries == []


def test_two_drills_in_one_second_read_in_the_order_written(tmp_path: Path) -> None:
    repo = Repository(LocalStore(tmp_path))
    for result in ("PASS", "FAIL", "PASS", "FAIL"):
        drills.put(repo.store, DrillRecord("app", "app", GOOD.date, result))
    assert [r.result for r in repo.drill_records().records] == ["PASS", "FAIL", "PASS", "FAIL"]


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {**json.loads(GOOD.to_json()), "format_version": 2},
        {**json.loads(GOOD.to_json()), "result": "MAYBE"},
        {**json.loads(GOOD.to_json()), "date": "2026-13-40T04:00:00Z"},
        {**json.loads(GOOD.to_json()), "date": "yesterday"},
        {**json.loads(GOOD.to_json()), "restore_seconds": -1},
        {**json.loads(GOOD.to_json()), "restore_seconds": True},
        {**json.loads(GOOD.to_json()), "series": ""},
        {**json.loads(GOOD.to_json()), "source_id": "../etc"},
        {**json.loads(GOOD.to_json()), "anomalies": "x" * 5000},
        {**json.loads(GOOD.to_json()), "host": ["ops1"]},
    ],
)
def test_records_that_do_not_fit_the_schema_are_skipped(tmp_path: Path, doc: dict[str, object]) -> None:
    store = LocalStore(tmp_path)
    store.put("drills/app/20261120_040000-0000beef.json", [json.dumps(doc).encode()])
    drills.put(store, GOOD)
    assert [r.date for r in Repository(store).drill_records().records] == [GOOD.date]


def test_garbage_misfiled_and_oversized_records_are_skipped(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("drills/app/20261120_040000-00000001.json", [b"\xff not json"])
    store.put("drills/app/20261120_040000-00000002.json", [b"[" * 100_000])
    store.put("drills/app/20261120_040000-00000003.json", [b" " * (MAX_BYTES + 1)])
    store.put("drills/app/notes.txt", [GOOD.to_json()])
    store.put("drills/shop/20261120_040000-00000004.json", [GOOD.to_json()])  # says source app, filed under shop
    store.put("drills/20261120_040000-00000005.json", [GOOD.to_json()])
    assert Repository(store).drill_records().records == []


@given(st.binary(max_size=2000) | st.text(max_size=500).map(str.encode))
def test_from_json_never_raises_anything_but_value_error(raw: bytes) -> None:
    with contextlib.suppress(ValueError):
        DrillRecord.from_json(raw)


def test_with_a_verify_key_only_records_it_verifies_are_believed(tmp_path: Path) -> None:
    """Whoever can write the store could write a PASS to hide failing drills: with a verify key, an unsigned
    record, one signed by another key, and a signed record whose bytes were changed are not believed, and
    counted."""
    mine, theirs = generate(tmp_path / "mine.key"), generate(tmp_path / "theirs.key")
    tmp_path = tmp_path / "store"
    store = LocalStore(tmp_path)
    signed = drills.put(store, GOOD, mine)
    drills.put(store, replace(GOOD, date="2026-11-21T04:00:00Z"))  # unsigned
    drills.put(store, replace(GOOD, date="2026-11-22T04:00:00Z"), theirs)
    tampered = drills.put(store, replace(GOOD, date="2026-11-23T04:00:00Z", result="FAIL"), mine)
    raw = (tmp_path / tampered).read_bytes().replace(b'"FAIL"', b'"PASS"')
    (tmp_path / tampered).write_bytes(raw)
    assert len(Repository(store).drill_records().records) == 4  # without a verify key: every one that reads
    found = Repository(store, parse_verify_key(mine.public)).drill_records()
    assert [r.date for r in found.records] == [GOOD.date] and found.refused == 3
    assert (tmp_path / (signed + ".sig")).stat().st_size == 64


def test_a_genuine_record_replayed_or_junk_planted_late_hides_no_failed_drill(tmp_path: Path) -> None:
    """The signature covers the record's name: a genuine PASS (and its .sig) copied under later names does not
    verify; and junk under the latest names neither pushes the genuine FAIL out of the records read nor goes
    unnoticed: each is counted."""
    key = generate(tmp_path / "k.key")
    store = LocalStore(tmp_path / "store")
    repo = Repository(store)
    passed = drills.put(repo.store, GOOD, key)
    drills.put(repo.store, replace(GOOD, date="2026-11-21T04:00:00Z", result="FAIL"), key)
    root = tmp_path / "store"
    for i in range(60):
        late = f"drills/app/99991231_235959-{i:08x}.json"
        (root / late).write_bytes((root / passed).read_bytes())  # the genuine PASS, bytes and signature
        (root / (late + ".sig")).write_bytes((root / (passed + ".sig")).read_bytes())
    same_day = "drills/app/20261121_040000-ffffffff.json"  # the PASS's bytes under the FAIL's date: not its name
    (root / same_day).write_bytes((root / passed).read_bytes())
    found = Repository(store, parse_verify_key(key.public)).drill_records()
    assert [r.result for r in found.records] == ["PASS", "FAIL"] and found.refused == 61
    # Without a verify key nothing can be told apart, but a record under a name that is not its own still is not
    # believed: the newest believed records are the genuine ones.
    assert [r.result for r in repo.drill_records().records] == ["PASS", "FAIL"]
