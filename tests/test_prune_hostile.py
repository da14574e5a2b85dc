"""prune against a store crafted by someone who can write it: sets copied under another source's directory, a
linked directory pointing outside, the legacy layout mixed with the new one, same-second sets, a manifest dated
a few minutes ahead, and a top-level set whose manifest names another source. Nothing good that the policy keeps
is deleted, and nothing broken, future or foreign is counted or deleted."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from dbkeeper.prune import run_prune
from dbkeeper.repo import Repository, catalog, names
from dbkeeper.repo.manifest import iso
from dbkeeper.retention import FUTURE, Policy
from dbkeeper.storage.local import LocalStore
from history import NOW, Template, at, daily, files, plant, real_backup, small_app, snapshot, triples


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "backups")


@pytest.fixture
def template(tmp_path: Path) -> Template:
    return real_backup(LocalStore(tmp_path / "scratch"), small_app(tmp_path / "app.db"), at("2020-01-01"))


def legacy(store: LocalStore, template: Template, when: str, source_id: str | None = None) -> str:
    """A set of the previous flat layout (format 1), or a format 2 manifest claiming ``source_id`` at the top."""
    file = names.new_name("x", "app", at(when), ".db.gz").file
    doc = dataclasses.replace(template.manifest, source_id=source_id, file=file)
    doc.created_at = doc.completed_at = iso(at(when))
    raw = json.loads(doc.to_json())
    if source_id is None:
        del raw["format_version"]
        raw["format"] = 1
        del raw["source_id"]
    store.put(file, [template.data])
    store.put(names.sidecar(file), [names.sha256_line(doc.sha256, file)])
    store.put(names.manifest(file), [json.dumps(raw).encode()])
    return file


def second_of_its_second(store: LocalStore, template: Template, name: str) -> str:
    """Another set started in the same second as ``name``: the same objects under the ``-2`` name."""
    first = names.parse(name)
    assert first is not None
    second = dataclasses.replace(first, seq=2).name
    doc = dataclasses.replace(template.manifest, source_id=first.source_id, file=names.basename(second))
    doc.created_at = doc.completed_at = iso(first.started)
    store.put(second, [template.data], if_absent=True)
    store.put(names.sidecar(second), [names.sha256_line(doc.sha256, second)], if_absent=True)
    store.put(names.manifest(second), [doc.to_json()], if_absent=True)
    return second


def copy_set(store: LocalStore, name: str, source: str) -> str:
    """The set's three objects, byte for byte, under another source's directory (its manifest unchanged)."""
    (store.root / source).mkdir(exist_ok=True)
    for part in names.files(name):
        shutil.copy(store.root / part, store.root / source / names.basename(part))
    return f"{source}/{names.basename(name)}"


def test_a_crafted_store_never_loses_a_kept_good_set(store: LocalStore, template: Template, tmp_path: Path) -> None:
    real = daily(store, template, "2026-11-26", 4)  # app/: 11-26 .. 11-23
    same_second = second_of_its_second(store, template, real[0])  # the newest
    assert same_second.endswith("-2.db.gz")
    old = legacy(store, template, "2026-11-01")  # the previous layout: the same history
    soon = plant(store, template, NOW + timedelta(minutes=3))  # within the slack: ok, but not counted
    foreign = copy_set(store, real[0], "other")  # a manifest of source app under other/: broken for other
    claims = legacy(store, template, "2026-10-01", source_id="casino-us")  # top level, a foreign source id
    outside = tmp_path / "outside"
    outside.mkdir()
    plant(LocalStore(outside), template, at("2026-10-01"), source="linked")
    os.symlink(outside / "linked", store.root / "linked")  # a linked source directory: never followed
    before_outside = snapshot(LocalStore(outside))

    found = {e.name: e for e in Repository(store).scan(NOW).entries}
    assert found[foreign].status == catalog.BROKEN and "belongs to source app" in str(found[foreign].problem)
    assert found[claims].status == catalog.BROKEN and "casino-us" in str(found[claims].problem)
    assert not any(n.startswith("linked/") for n in found)

    result = run_prune(Repository(store), Policy(keep_last=2), clock=lambda: NOW)
    by_name = {d.name: d for d in result.decisions}
    assert by_name[soon].keep and by_name[soon].reasons == (FUTURE,)
    kept_good = [d.name for d in result.decisions if d.keep and d.status == catalog.OK and d.name != soon]
    assert sorted(kept_good) == sorted([same_second, real[0]])
    assert {d.name for d in result.removed} == {*real[1:], old}
    assert files(store) == sorted(
        [*triples(same_second, real[0], soon, claims), *(f"other/{n}" for n in triples(names.basename(real[0])))]
    )
    assert snapshot(LocalStore(outside)) == before_outside
