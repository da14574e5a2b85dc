"""DryRunStore: reads go to the real store; writes are recorded, not made, and the store is left as it was."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbkeeper.errors import AlreadyExists, NotFound, StoreError
from dbkeeper.storage import DryRunStore, Planned, Store
from dbkeeper.storage.local import LocalStore
from dbkeeper.storage.s3 import MIN_PART_SIZE, S3Store
from store_cases import kill_writer, start_local_writer


def tree(root: Path) -> list[tuple[str, bytes | None]]:
    """Everything under ``root`` (directories too, and hidden files), with file contents."""
    return sorted((str(p.relative_to(root)), p.read_bytes() if p.is_file() else None) for p in root.rglob("*"))


@pytest.fixture(params=["local", "s3"])
def real(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Store.from_url(f"s3://{bucket}/p", part_size=MIN_PART_SIZE)


def test_writes_are_recorded_not_made(real: Store) -> None:
    real.put("db/old", [b"old"])
    before = real.list()
    dry = DryRunStore(real)
    assert dry.url == real.url and dry.describe("db/x") == real.describe("db/x")
    produced = []

    def stream() -> Iterator[bytes]:
        for i in range(3):
            produced.append(i)
            yield os.urandom(1000)

    assert dry.put("db/new", stream(), size_hint=3000) == 3000
    assert produced == [0, 1, 2]  # the producer ran to the end
    dry.delete("db/old")
    assert real.list() == dry.list() == before
    with dry.open("db/old") as f:
        assert f.read() == b"old"
    assert dry.planned == [
        Planned("put", "db/new", real.describe("db/new"), 3000),
        Planned("delete", "db/old", real.describe("db/old")),
    ]


def test_it_refuses_what_the_real_store_would(real: Store) -> None:
    real.put("db/old", [b"old"])
    dry = DryRunStore(real)
    with pytest.raises(AlreadyExists):
        dry.put("db/old", [b"new"], if_absent=True)
    assert dry.put("db/ol", [b"new"], if_absent=True) == 3  # a name that is only a prefix of another is free
    for bad in ("../x", "a//b", ".hidden"):
        with pytest.raises(StoreError):
            dry.put(bad, [b"x"])
        with pytest.raises(StoreError):
            dry.delete(bad)
    with pytest.raises(NotFound):
        dry.open("db/missing")
    assert [p.name for p in dry.planned] == ["db/ol"]
    assert [o.name for o in real.list()] == ["db/old"]


def test_a_dry_run_leaves_a_local_store_untouched(tmp_path: Path) -> None:
    real = LocalStore(tmp_path / "store")
    real.put("a/b", [b"x"])
    kill_writer(start_local_writer(real.root, "a/c"))
    before = tree(real.root)
    dry = DryRunStore(real)
    dry.put("new/dir/obj", [b"y"])
    dry.delete("a/b")
    [left] = dry.leftovers()
    dry.remove_leftover(left)
    assert tree(real.root) == before  # not even a directory was made
    assert dry.planned[-1] == Planned("remove leftover", "a/c", left.key)
    assert real.leftovers() == [left]


def test_a_dry_run_leaves_an_unfinished_upload(s3_bucket: str, s3_client: Any) -> None:
    upload = s3_client.create_multipart_upload(Bucket=s3_bucket, Key="p/db/obj")
    dry = DryRunStore(S3Store.from_url(f"s3://{s3_bucket}/p"))
    [left] = dry.leftovers()
    dry.remove_leftover(left)
    assert [u["UploadId"] for u in s3_client.list_multipart_uploads(Bucket=s3_bucket)["Uploads"]] == [
        upload["UploadId"]
    ]
