"""Two writers committing the same source into one store at once: distinct sets, or a clean failure; never one
set's objects replacing or removing another's. Real processes on a real directory, real requests to moto S3."""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dbkeeper.errors import AlreadyExists
from dbkeeper.repo import Repository, catalog, names
from dbkeeper.repo.manifest import Manifest, iso
from dbkeeper.storage import open_store
from dbkeeper.storage.local import LocalStore
from dbkeeper.storage.s3 import MIN_PART_SIZE

STARTED = datetime(2026, 11, 27, 2, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 28, tzinfo=UTC)
ROUNDS = 12


def _manifest(name: str, data: bytes) -> Manifest:
    return Manifest(
        engine="sqlite",
        source_id=names.parse(name).source_id,  # type: ignore[union-attr]
        database="app",
        file=names.basename(name),
        created_at=iso(STARTED),
        completed_at=iso(STARTED),
        duration_s=0.1,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        compression="gzip",
        encryption=None,
        dump_format="sqlite",
    )


def _commit(repo: Repository, data: bytes, pick_name: bool) -> str:
    """One writer: a name (asked of the store, or the first of the second), then the commit; the outcome."""
    name = (
        repo.new_name("app-1", "app", STARTED, ".db.gz").name
        if pick_name
        else names.new_name("app-1", "app", STARTED, ".db.gz").name
    )
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    try:
        repo.commit(name, chunks, lambda size: _manifest(name, data))
    except AlreadyExists:
        return "exists"
    return "ok " + name


def _local_writer(root: str, data: bytes, pick_name: bool, barrier: Any, out: Any) -> None:
    barrier.wait()
    out.put(_commit(Repository(LocalStore(root)), data, pick_name))


def _check(repo: Repository, outcomes: list[str], payloads: list[bytes]) -> None:
    committed = [o.split(" ", 1)[1] for o in outcomes if o.startswith("ok ")]
    assert committed, outcomes
    assert len(set(committed)) == len(committed)
    found = repo.scan(NOW)
    good = {e.name: e for e in found.entries if e.status == catalog.OK}
    assert set(committed) <= set(good), [(e.name, e.status, e.problem) for e in found.entries]
    assert set(committed) <= set(good)
    for name in committed:  # every committed set holds the bytes its own manifest describes
        with repo.open(name) as f:
            stored = f.read()
        assert hashlib.sha256(stored).hexdigest() == repo.read_manifest(name).sha256 == repo.read_sidecar(name)
        assert stored in payloads


@pytest.mark.parametrize("pick_name", [False, True], ids=["same-name", "new_name"])
def test_two_processes_commit_one_source_into_one_directory(tmp_path: Path, pick_name: bool) -> None:
    ctx = multiprocessing.get_context("fork")
    for n in range(ROUNDS):
        root = str(tmp_path / f"store{n}")
        payloads = [bytes([i]) * (200_000 + i) for i in (1, 2)]
        barrier, out = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_local_writer, args=(root, p, pick_name, barrier, out)) for p in payloads]
        for p in procs:
            p.start()
        outcomes = [out.get(timeout=30) for _ in procs]
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
        repo = Repository(LocalStore(root))
        _check(repo, outcomes, payloads)
        assert not repo.leftovers(NOW)  # the loser cleaned up its temporary file
        if not pick_name:
            assert sorted(outcomes)[0] == "exists"


def test_a_writer_that_finishes_its_upload_second_fails_and_leaves_the_first_set_alone(s3_store_url: str) -> None:
    """B's multipart upload is under way when A commits the same name; B's complete must be refused (a real
    conditional CompleteMultipartUpload), abort its upload and remove nothing of A's."""
    first, second = b"\x01" * 1000, b"\x02" * (6 << 20)
    uploading, committed, outcome = threading.Event(), threading.Event(), []

    def slow() -> Iterator[bytes]:
        yield second[: MIN_PART_SIZE + 1]  # the first part goes up
        uploading.set()
        assert committed.wait(30)
        yield second[MIN_PART_SIZE + 1 :]

    def writer_b() -> None:
        store = open_store(s3_store_url)
        store.store.part_size = MIN_PART_SIZE  # type: ignore[attr-defined]
        name = names.new_name("app-1", "app", STARTED, ".db.gz").name
        try:
            Repository(store).commit(name, slow(), lambda size: _manifest(name, second))
        except AlreadyExists:
            outcome.append("exists")

    b = threading.Thread(target=writer_b)
    b.start()
    assert uploading.wait(30)
    repo = Repository(open_store(s3_store_url))
    result = _commit(repo, first, pick_name=False)
    committed.set()
    b.join(60)
    assert outcome == ["exists"]
    _check(repo, [result], [first])
    assert not repo.leftovers(NOW)  # B aborted its upload


class _CheckThenWrite(LocalStore):
    """A store like an endpoint without conditional writes, where two writers both passed the check before
    either wrote: the next ``if_absent`` put of a data file replaces what is there."""

    race = True

    def put(self, name: str, chunks: Iterable[bytes], *, if_absent: bool = False, size_hint: int | None = None) -> int:
        if self.race and names.parse(name) is not None:
            self.race = False
            if_absent = False
        return super().put(name, chunks, if_absent=if_absent, size_hint=size_hint)


def test_a_writer_that_loses_the_race_at_the_sidecar_removes_nothing(tmp_path: Path) -> None:
    name = names.new_name("app-1", "app", STARTED, ".db.gz").name
    first, second = b"\x01" * 1000, b"\x02" * 1000
    Repository(LocalStore(tmp_path)).commit(name, [first], lambda size: _manifest(name, first))
    with pytest.raises(AlreadyExists):
        Repository(_CheckThenWrite(tmp_path)).commit(name, [second], lambda size: _manifest(name, second))
    # Its data replaced A's (the endpoint's race, not ours to prevent), but it must not delete the data file that
    # A's manifest commits: A's set stays there to be seen as damaged, instead of disappearing.
    assert {o.name for o in LocalStore(tmp_path).list()} == set(names.files(name))
