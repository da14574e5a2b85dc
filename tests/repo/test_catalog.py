"""The catalog of a real directory store: series per source, a tolerant scan, and what is never ``latest``."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from dbkeeper.errors import AlreadyExists, NotFound, UsageError
from dbkeeper.repo import Repository, catalog, names
from dbkeeper.repo.manifest import iso
from dbkeeper.storage.local import LocalStore
from history import NOW, Template, at, plant, real_backup, small_app


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "backups")


@pytest.fixture
def template(tmp_path: Path) -> Template:
    return real_backup(LocalStore(tmp_path / "scratch"), small_app(tmp_path / "app.db"), at("2020-01-01"))


def test_two_sources_with_one_database_name_are_two_series(store: LocalStore, template: Template) -> None:
    eu = plant(store, template, at("2026-11-26"), database="casino", source="casino-eu")
    us = plant(store, template, at("2026-11-27"), database="casino", source="casino-us")
    found = Repository(store).scan(NOW)
    assert sorted(found.series()) == [("casino-eu", "casino"), ("casino-us", "casino")]
    assert catalog.latest(found, source="casino-eu").name == eu
    assert catalog.latest(found, source="casino-us", database="casino").name == us
    with pytest.raises(UsageError, match=r"several sources: casino-eu \(casino\), casino-us \(casino\)") as info:
        catalog.latest(found, database="casino")
    assert "--source" in str(info.value.hint)


def test_a_future_dated_set_is_flagged_never_latest(store: LocalStore, template: Template) -> None:
    real = plant(store, template, at("2026-10-28"))
    skewed = plant(store, template, NOW + timedelta(days=30))
    found = Repository(store).scan(NOW)
    entry = next(e for e in found.entries if e.name == skewed)
    assert entry.status == catalog.FUTURE and "in the future" in str(entry.problem)
    assert catalog.latest(found).name == real
    # A few minutes of skew is tolerated: NTP-level differences between hosts are not an alarm.
    near = plant(store, template, NOW + timedelta(minutes=3))
    assert next(e for e in Repository(store).scan(NOW).entries if e.name == near).good


def test_freshness_takes_the_store_clock_when_a_manifest_claims_more(store: LocalStore, template: Template) -> None:
    name = plant(store, template, NOW)
    old = (NOW - timedelta(days=30)).timestamp()
    for part in names.files(name):
        os.utime(store.root / part, (old, old))
    [entry] = Repository(store).scan(NOW).entries
    assert entry.created == NOW and entry.fresh_at == NOW - timedelta(days=30)


@pytest.mark.parametrize(
    "change,why",
    [
        ({"created_at": 1700000000}, "created_at"),
        ({"created_at": None}, "lacks created_at"),
        ({"row_counts": [1]}, "row_counts"),
        ({"row_counts": None}, "row_counts is null"),
        ({"row_counts": {}}, None),  # a database without tables
        ({"extra": "x"}, "extra"),
        ({"source_id": "other"}, "belongs to source other"),
        ({"file": "other_20261127_020000.db.gz"}, "describes other"),
        ({"database": "other"}, "describes database 'other'"),
    ],
)
def test_a_malformed_manifest_is_a_broken_entry_with_its_reason(
    store: LocalStore, template: Template, change: dict[str, object], why: str | None
) -> None:
    name = plant(store, template, at("2026-11-26"))
    path = store.root / names.manifest(name)
    doc = json.loads(path.read_text())
    doc.update(change)
    path.write_text(json.dumps(doc))
    [entry] = Repository(store).scan(NOW).entries
    if why is None:
        assert entry.good
    else:
        assert entry.status == catalog.BROKEN and why in str(entry.problem)


def test_deep_json_and_garbage_are_broken_entries(store: LocalStore, template: Template) -> None:
    a = plant(store, template, at("2026-11-25"))
    b = plant(store, template, at("2026-11-26"))
    (store.root / names.manifest(a)).write_bytes(b"[" * 50_000 + b"]" * 50_000)
    (store.root / names.manifest(b)).write_bytes(os.urandom(300))
    assert [e.status for e in Repository(store).scan(NOW).entries] == ["broken", "broken"]


def test_orphans_and_strangers(store: LocalStore, template: Template) -> None:
    good = plant(store, template, at("2026-11-26"))
    gone = plant(store, template, at("2026-11-25"))
    (store.root / gone).unlink()
    lone = names.new_name("app", "app", at("2026-11-24"), ".db.gz").name
    (store.root / names.sidecar(lone)).write_text("x")
    (store.root / "notes.txt").write_text("not a backup")
    (store.root / "app" / "README").write_text("not a backup either")
    found = {e.name: e for e in Repository(store).scan(NOW).entries}
    assert found[good].good
    assert found[gone].status == catalog.BROKEN and "data file is missing" in str(found[gone].problem)
    assert found[lone].status == catalog.INCOMPLETE
    assert len(found) == 3


def test_the_legacy_flat_layout_reads_as_the_source_named_after_its_database(
    store: LocalStore, template: Template
) -> None:
    doc = dataclasses.replace(template.manifest, source_id=None, format_version=1, file="app_20261126_020000.db.gz")
    doc.created_at = doc.completed_at = iso(at("2026-11-26"))
    raw = json.loads(doc.to_json())
    raw["format"] = raw.pop("format_version")
    del raw["source_id"]
    store.put(doc.file, [template.data])
    store.put(names.sidecar(doc.file), [names.sha256_line(doc.sha256, doc.file)])
    store.put(names.manifest(doc.file), [json.dumps(raw).encode()])
    new = plant(store, template, at("2026-11-27"))  # source "app": the config name that replaced the old layout
    found = Repository(store).scan(NOW)
    assert [(e.name, e.source_id, e.legacy, e.status) for e in found.entries] == [
        ("app_20261126_020000.db.gz", "app", True, "ok"),
        (new, "app", False, "ok"),
    ]
    assert list(found.series()) == [("app", "app")]  # one history across the change of layout
    assert Repository(store).scan(NOW, source="app").entries == found.entries


def test_commit_never_replaces_and_names_never_collide(store: LocalStore, template: Template) -> None:
    repo = Repository(store)
    first = repo.new_name("app", "app", NOW, ".db.gz").name
    plant(store, template, NOW)
    second = repo.new_name("app", "app", NOW, ".db.gz")
    assert second.name != first and second.seq == 2
    before = (store.root / first).read_bytes()
    with pytest.raises(AlreadyExists):
        repo.commit(first, [b"other bytes"], lambda size: template.manifest)
    assert (store.root / first).read_bytes() == before
    assert Repository(store).scan(NOW).entries[0].good


def test_latest_of_nothing_says_what_to_do(store: LocalStore) -> None:
    with pytest.raises(NotFound, match="no complete backup found of source x") as info:
        Repository(store).latest(NOW, source="x")
    assert "dbkeeper list" in str(info.value.hint)


@pytest.mark.parametrize(
    "planted",
    [
        "app-1/app_20261127_020000-1.sql.gz",  # would parse as app_20261127_020000.sql.gz
        "app-1/app_00010101_000000.sql.gz",  # year 1 formats as "1"
        "app-1/app_20261127_020000.sql.gz\n",
        "app-1/app_20261127_020000-1.sql.gz.json",
    ],
)
def test_a_planted_file_named_almost_like_a_set_never_breaks_the_scan(
    store: LocalStore, template: Template, planted: str
) -> None:
    good = plant(store, template, at("2026-11-26"), source="app-1")
    (store.root / planted).write_bytes(b"{}")
    found = Repository(store).scan(NOW)
    assert [e.name for e in found.entries] == [good]
    assert found.entries[0].good


def test_a_manifest_one_byte_too_large_is_refused_by_every_reader(store: LocalStore, template: Template) -> None:
    """Valid JSON padded to the 16 MiB limit, then one more byte: the catalog and ``read_manifest`` (verify,
    restore, copy) must agree that it is too large, not read its first 16 MiB as a good manifest."""
    from dbkeeper.repo.manifest import MAX_BYTES, ManifestError

    name = plant(store, template, at("2026-11-26"))
    doc = store.local_path(names.manifest(name)).read_bytes()
    store.local_path(names.manifest(name)).write_bytes(doc + b" " * (MAX_BYTES - len(doc)) + b"x")
    [entry] = Repository(store).scan(NOW).entries
    assert entry.status == catalog.BROKEN and "larger than 16 MiB" in str(entry.problem)
    with pytest.raises(ManifestError, match="larger than 16 MiB"):
        Repository(store).read_manifest(name)
