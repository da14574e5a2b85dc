"""A Store that tries again (restic's ``retry.New(backend)``): the stores classify, this wrapper only counts.

Every operation that fails with Transient (network, throttling, 5xx) is repeated, up to ``attempts`` times in
all, after ``base_delay``, then twice that, and so on (capped at ``max_delay``). Other errors (NotFound,
PermissionDenied, AlreadyExists, ...) are raised at once: trying again would not change them.

``put`` is repeated only when its chunks can be read again: a list or tuple. A one-shot iterator (a pipe from
pg_dump) is half consumed by the failed attempt, so the wrapper raises instead of storing a truncated object;
retrying such a put means running its producer again, which only the caller can do.

``open`` retries opening only: a read that fails later in the stream raises to the reader.

With ``if_absent``, a put whose first attempt stored the object but whose answer was lost fails its retry with
AlreadyExists: the caller cannot tell its own object from another writer's, so the error says so.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterable
from typing import BinaryIO, TypeVar

from dbkeeper.errors import AlreadyExists, Transient
from dbkeeper.storage import Leftover, ObjectInfo, Store

T = TypeVar("T")


class RetryingStore:
    def __init__(
        self,
        store: Store,
        *,
        attempts: int = 3,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.store = store
        self.url = store.url
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep

    def _retry(self, call: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except Transient as exc:
                if attempt == self.attempts:
                    if self.attempts > 1:
                        exc.hint = f"{exc.hint or 'retry later'} (tried {self.attempts} times)"
                    raise
                self._sleep(min(self.base_delay * 2 ** (attempt - 1), self.max_delay))
        raise AssertionError("unreachable")

    def put(self, name: str, chunks: Iterable[bytes], *, if_absent: bool = False, size_hint: int | None = None) -> int:
        if not isinstance(chunks, list | tuple):
            return self.store.put(name, chunks, if_absent=if_absent, size_hint=size_hint)
        failed = False

        def attempt() -> int:
            nonlocal failed
            try:
                return self.store.put(name, chunks, if_absent=if_absent, size_hint=size_hint)
            except Transient:
                failed = True
                raise
            except AlreadyExists as exc:
                if failed:
                    exc.hint = (
                        f"{exc.hint}; an earlier attempt failed in transit and may have stored it: "
                        f"check {self.store.describe(name)}"
                    )
                raise

        return self._retry(attempt)

    def open(self, name: str) -> BinaryIO:
        return self._retry(lambda: self.store.open(name))

    def list(self, prefix: str = "", *, skip: tuple[str, ...] = ()) -> list[ObjectInfo]:
        return self._retry(lambda: self.store.list(prefix, skip=skip))

    def exists(self) -> bool:
        return self._retry(self.store.exists)

    def delete(self, name: str) -> None:
        self._retry(lambda: self.store.delete(name))

    def describe(self, name: str) -> str:
        return self.store.describe(name)

    def leftovers(self) -> builtins.list[Leftover]:
        return self._retry(self.store.leftovers)

    def remove_leftover(self, leftover: Leftover) -> None:
        self._retry(lambda: self.store.remove_leftover(leftover))
