"""``locate``: where a BACKUP argument points, for arguments a user (or a script) may get wrong."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from dbkeeper.errors import DbkeeperError, NoSuchBackup, NotFound, UsageError
from dbkeeper.repo import Repository, locate, names
from dbkeeper.storage.local import LocalStore
from history import NOW, Template, at, plant, real_backup, small_app


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "backups")


@pytest.fixture
def template(tmp_path: Path) -> Template:
    return real_backup(LocalStore(tmp_path / "scratch"), small_app(tmp_path / "app.db"), at("2020-01-01"))


def opener(store: LocalStore):  # type: ignore[no-untyped-def]
    return lambda url: Repository(LocalStore(url) if url else store)


def test_a_file_name_two_sources_hold_must_be_named_with_its_source(store: LocalStore, template: Template) -> None:
    eu = plant(store, template, at("2026-11-26"), source="casino-eu")
    us = plant(store, template, at("2026-11-26"), source="casino-us")
    with pytest.raises(UsageError, match="several sources") as info:
        locate(names.basename(eu), opener(store), NOW)
    assert eu in str(info.value.hint) and us in str(info.value.hint)
    assert locate(us, opener(store), NOW)[1] == us


def test_a_path_into_the_store_keeps_the_layout_only_when_the_manifest_agrees(
    store: LocalStore, template: Template, tmp_path: Path
) -> None:
    eu = plant(store, template, at("2026-11-26"), source="casino-eu")
    repo, name = locate(str(store.root / eu), opener(store), NOW)
    assert (Path(repo.url), name) == (store.root, eu)
    # The same objects under a directory named like another source: a set of that directory, not casino-us's.
    (tmp_path / "elsewhere" / "casino-us").mkdir(parents=True)
    for part in names.files(eu):
        shutil.copy(store.root / part, tmp_path / "elsewhere" / "casino-us")
    moved = tmp_path / "elsewhere" / "casino-us" / names.basename(eu)
    repo, name = locate(str(moved), opener(store), NOW)
    assert (Path(repo.url), name) == (moved.parent, moved.name)
    # ... where the catalog sees a top-level set whose manifest names another source: broken, not restorable.
    [entry] = repo.scan(NOW).entries
    assert entry.status == "broken" and "casino-eu" in str(entry.problem)


@pytest.mark.parametrize(
    "spec,error",
    [
        ("x" * 300, DbkeeperError),  # longer than a file name may be: looked up in the store, not a traceback
        ("casino-eu/../../etc/passwd", NotFound),
        ("no/such/file.sql.gz", NotFound),
    ],
)
def test_odd_arguments_fail_as_errors(store: LocalStore, template: Template, spec: str, error: type) -> None:
    plant(store, template, at("2026-11-26"), source="casino-eu")
    with pytest.raises(error):
        repo, name = locate(spec, opener(store), NOW)
        repo.open(name).close()


def test_an_s3_url_of_a_set_keeps_its_source_directory(s3_store_url: str, template: Template) -> None:
    from dbkeeper.storage import open_store

    store = open_store(s3_store_url)
    name = "casino-eu/" + names.new_name("x", "app", at("2026-11-26"), ".db.gz").file
    doc = dataclasses.replace(template.manifest, source_id="casino-eu", file=names.basename(name))
    Repository(store).commit(name, [template.data], lambda size: doc)

    def s3_opener(url: str | None) -> Repository:
        return Repository(open_store(url) if url else store)

    repo, found = locate(f"{s3_store_url}/{name}", s3_opener, NOW)
    assert (repo.url, found) == (s3_store_url, name)
    assert repo.read_manifest(found).source_id == "casino-eu"
    # Not a set of its source: read as a top-level set of that directory, as a path would be.
    with pytest.raises(NoSuchBackup, match=f"no backup {names.basename(name)} in {s3_store_url}/other$"):
        locate(f"{s3_store_url}/other/{names.basename(name)}", s3_opener, NOW)
    for spec in ("s3://", "s3://bucket", "s3://bucket/"):
        with pytest.raises(UsageError, match="names no backup"):
            locate(spec, s3_opener, NOW)
