"""RetryingStore: Transient failures are tried again with growing pauses; nothing else is, nor a one-shot stream."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import boto3
import pytest

from dbkeeper.errors import AlreadyExists, NotFound, Transient
from dbkeeper.storage import TEMP_MARK, Leftover, ObjectInfo, RetryingStore, Store
from dbkeeper.storage.local import LocalStore
from dbkeeper.storage.s3 import S3Store
from s3server import MotoServer, aws_env, free_port


class Flaky:
    """A real LocalStore whose next ``failures`` calls raise Transient (the fault a network gives S3 stores).

    With ``after=True`` a failing put first stores the object, as when a write succeeds but its answer is lost.
    """

    def __init__(self, root: Path, failures: int, *, after: bool = False) -> None:
        self.inner = LocalStore(root)
        self.url = self.inner.url
        self.failures = failures
        self.after = after
        self.calls: list[str] = []

    def _fault(self, op: str) -> None:
        self.calls.append(op)
        if self.failures > 0:
            self.failures -= 1
            raise Transient(f"{op}: connection reset", "retry later")

    def put(self, name: str, chunks: Iterable[bytes], *, if_absent: bool = False, size_hint: int | None = None) -> int:
        if self.after:
            self.calls.append("put")
            n = self.inner.put(name, chunks, if_absent=if_absent)
            if self.failures > 0:
                self.failures -= 1
                raise Transient("put: answer lost", "retry later")
            return n
        it = iter(chunks)
        next(it, None)  # a failed upload has read some of the stream
        self._fault("put")
        return self.inner.put(name, chunks, if_absent=if_absent)

    def open(self, name: str) -> BinaryIO:
        self._fault("open")
        return self.inner.open(name)

    def list(self, prefix: str = "", *, skip: tuple[str, ...] = ()) -> list[ObjectInfo]:
        self._fault("list")
        return self.inner.list(prefix, skip=skip)

    def delete(self, name: str) -> None:
        self._fault("delete")
        self.inner.delete(name)

    def describe(self, name: str) -> str:
        return self.inner.describe(name)

    def leftovers(self) -> list[Leftover]:
        self._fault("leftovers")
        return self.inner.leftovers()

    def remove_leftover(self, leftover: Leftover) -> None:
        self._fault("remove_leftover")
        self.inner.remove_leftover(leftover)


def retrying(store: Store, sleeps: list[float], attempts: int = 3) -> RetryingStore:
    return RetryingStore(store, attempts=attempts, base_delay=0.5, sleep=sleeps.append)


def test_transient_failures_are_retried_with_exponential_backoff(tmp_path: Path) -> None:
    flaky, sleeps = Flaky(tmp_path, 0), []
    store = retrying(flaky, sleeps, attempts=4)
    assert store.url == flaky.url and store.describe("a/b") == flaky.describe("a/b")
    store.put("a/b", [b"data"])
    for op, call in [
        ("list", lambda: [o.name for o in store.list("a/")]),
        ("open", lambda: store.open("a/b").read()),
        ("leftovers", store.leftovers),
    ]:
        flaky.failures, flaky.calls, sleeps[:] = 3, [], []
        assert call() in (["a/b"], b"data", [])
        assert flaky.calls == [op] * 4
        assert sleeps == [0.5, 1.0, 2.0]
    flaky.failures = 2
    store.delete("a/b")
    assert flaky.inner.list() == []


def test_backoff_is_capped(tmp_path: Path) -> None:
    sleeps: list[float] = []
    store = RetryingStore(Flaky(tmp_path, 5), attempts=6, base_delay=1, max_delay=3, sleep=sleeps.append)
    assert store.list() == []
    assert sleeps == [1, 2, 3, 3, 3]


def test_it_gives_up_after_the_last_attempt(tmp_path: Path) -> None:
    flaky, sleeps = Flaky(tmp_path, 10), []
    with pytest.raises(Transient) as info:
        retrying(flaky, sleeps).list()
    assert flaky.calls == ["list"] * 3 and len(sleeps) == 2
    assert "tried 3 times" in (info.value.hint or "")


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    flaky, sleeps = Flaky(tmp_path, 0), []
    with pytest.raises(NotFound):
        retrying(flaky, sleeps).open("missing")
    assert flaky.calls == ["open"] and sleeps == []


def test_put_of_a_list_is_retried(tmp_path: Path) -> None:
    flaky, sleeps = Flaky(tmp_path, 2), []
    assert retrying(flaky, sleeps).put("x/obj", [b"ab", b"cd"]) == 4
    assert flaky.calls == ["put"] * 3
    assert flaky.inner.open("x/obj").read() == b"abcd"


def test_put_of_a_one_shot_stream_is_not_retried(tmp_path: Path) -> None:
    flaky, sleeps = Flaky(tmp_path, 1), []

    def stream() -> Iterator[bytes]:
        yield b"ab"
        yield b"cd"

    with pytest.raises(Transient):
        retrying(flaky, sleeps).put("obj", stream())
    assert flaky.calls == ["put"] and sleeps == []
    assert flaky.inner.list() == []


def test_if_absent_after_a_lost_answer_says_it_may_be_ours(tmp_path: Path) -> None:
    flaky, sleeps = Flaky(tmp_path, 1, after=True), []
    with pytest.raises(AlreadyExists) as info:
        retrying(flaky, sleeps).put("obj", [b"mine"], if_absent=True)
    assert "earlier attempt" in (info.value.hint or "")
    assert flaky.inner.open("obj").read() == b"mine"


def test_leftover_removal_is_retried(tmp_path: Path) -> None:
    flaky, sleeps = Flaky(tmp_path, 0), []
    (tmp_path / f".obj.0badcafe{TEMP_MARK}").write_bytes(b"half")
    store = retrying(flaky, sleeps)
    [left] = store.leftovers()
    flaky.failures = 2
    store.remove_leftover(left)
    assert flaky.inner.leftovers() == [] and len(sleeps) == 2


def test_an_s3_endpoint_that_comes_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_env: Any) -> None:
    """A real outage: the endpoint is down for the first attempt and back (on the same port) for the second."""
    server = MotoServer()
    for name, value in aws_env(server.url, tmp_path).items():
        monkeypatch.setenv(name, value)
    store = S3Store.from_url("s3://back/p")
    restarts: list[float] = []

    def come_back(delay: float) -> None:
        restarts.append(delay)
        server.start()
        boto3.client("s3").create_bucket(Bucket="back")

    try:
        retrying_store = RetryingStore(store, base_delay=0.25, sleep=come_back)
        assert retrying_store.put("db/obj", [os.urandom(10), b"x"]) == 11
        assert [o.name for o in retrying_store.list()] == ["db/obj"]
    finally:
        server.stop()
    assert restarts == [0.25]


def test_an_s3_endpoint_that_stays_down(s3_env: Any) -> None:
    sleeps: list[float] = []
    store = RetryingStore(
        S3Store.from_url("s3://b/p", endpoint_url=f"http://127.0.0.1:{free_port()}"), sleep=sleeps.append
    )
    for call in (store.list, lambda: store.put("obj", [b"x"])):
        sleeps.clear()
        with pytest.raises(Transient) as info:
            call()
        assert sleeps == [1.0, 2.0]
        assert "tried 3 times" in (info.value.hint or "")
