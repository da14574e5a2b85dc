"""Every Store kind for the contract suite, each with a back door to plant objects and find leftovers."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from dbkeeper.storage import TEMP_MARK, Store
from dbkeeper.storage.local import LocalStore
from dbkeeper.storage.s3 import MIN_PART_SIZE, S3Store


@dataclass
class StoreCase:
    store: Store
    plant: Callable[[str, bytes], None]
    """Write raw bytes at a path relative to the store's root, bypassing the store ("../x" is outside it)."""
    leftovers: Callable[[], list[str]]
    """Whatever a put left behind that is not an object: temporary files, unfinished multipart uploads."""


def _local(tmp_path: Path) -> StoreCase:
    root = tmp_path / "team" / "host1"

    def plant(rel: str, data: bytes) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def leftovers() -> list[str]:
        return sorted(p.name for p in tmp_path.rglob(f"*{TEMP_MARK}*"))

    return StoreCase(LocalStore(root), plant, leftovers)


def _s3(request: pytest.FixtureRequest) -> StoreCase:
    bucket = request.getfixturevalue("s3_bucket")
    client = request.getfixturevalue("s3_client")
    # 5 MiB parts (S3's minimum) so that an 11 MiB object takes the multipart path with three parts.
    store = S3Store.from_url(f"s3://{bucket}/team/host1", part_size=MIN_PART_SIZE)

    def plant(rel: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=posixpath.normpath(f"team/host1/{rel}"), Body=data)

    def leftovers() -> list[str]:
        return sorted(u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))

    return StoreCase(store, plant, leftovers)


def make_case(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> StoreCase:
    return _local(tmp_path) if kind == "local" else _s3(request)
