"""Every Store kind for the contract suite, each with a back door to plant objects and find leftovers."""

from __future__ import annotations

import posixpath
import signal
import subprocess
import sys
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
    abandon: Callable[[str], None]
    """Leave what a writer killed in the middle of a put of that name leaves (a real SIGKILL where it can be)."""
    missing: Callable[[], Store]
    """A store of the same kind that does not exist (a directory never made, a bucket never created)."""


_WRITER = """
import sys, time
from dbkeeper.storage.local import LocalStore

def slow():
    yield b"x" * 100_000
    print("writing", flush=True)  # the first chunk is in the temporary file
    time.sleep(600)
    yield b"never"

LocalStore(sys.argv[1]).put(sys.argv[2], slow())
"""


def start_local_writer(root: Path, name: str) -> subprocess.Popen[str]:
    """A real process in the middle of ``LocalStore(root).put(name, ...)``: it has written 100,000 bytes and
    waits, holding its temporary file's lock, until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root), name], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line != "writing\n":
        proc.kill()
        proc.wait()
        raise AssertionError(f"the writer did not start writing (exit {proc.returncode})")
    return proc


def kill_writer(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.stdout is not None
    proc.stdout.close()


def _local(tmp_path: Path) -> StoreCase:
    root = tmp_path / "team" / "host1"

    def plant(rel: str, data: bytes) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def leftovers() -> list[str]:
        return sorted(p.name for p in tmp_path.rglob(f"*{TEMP_MARK}*"))

    def abandon(name: str) -> None:
        kill_writer(start_local_writer(root, name))

    return StoreCase(LocalStore(root), plant, leftovers, abandon, lambda: LocalStore(tmp_path / "never" / "made"))


def _s3(request: pytest.FixtureRequest) -> StoreCase:
    bucket = request.getfixturevalue("s3_bucket")
    client = request.getfixturevalue("s3_client")
    # 5 MiB parts (S3's minimum) so that an 11 MiB object takes the multipart path with three parts.
    store = S3Store.from_url(f"s3://{bucket}/team/host1", part_size=MIN_PART_SIZE)

    def plant(rel: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=posixpath.normpath(f"team/host1/{rel}"), Body=data)

    def leftovers() -> list[str]:
        return sorted(u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))

    def abandon(name: str) -> None:
        key = f"team/host1/{name}"
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 100_000)

    def missing() -> Store:
        return S3Store.from_url(f"s3://{bucket}-never-created/team/host1")

    return StoreCase(store, plant, leftovers, abandon, missing)


def make_case(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> StoreCase:
    return _local(tmp_path) if kind == "local" else _s3(request)
