"""Small building blocks for streaming pipelines of byte chunks: a thread stage and a hashing tap.

A pipeline here is a chain of generators. ``threaded`` moves one end of the chain onto its own thread behind a
bounded queue, so that reading a child's pipe, compressing and hashing overlap on two cores while memory stays
at ``depth`` chunks. Errors travel with the data: a failing producer raises in the consumer, and a consumer
that stops early tells the producer to stop.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Stalled(Exception):
    """The producer handed over nothing for ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no progress for {seconds:g} s")
        self.seconds = seconds


def threaded(source: Iterable[bytes], depth: int = 8, stall_timeout: float | None = None) -> Iterator[bytes]:
    """Iterate ``source`` on a worker thread, handing chunks over through a queue of ``depth``.

    With ``stall_timeout``, a producer that hands over nothing for that long raises Stalled in the consumer
    (the watchdog: the caller then stops whatever feeds the producer, e.g. kills pg_dump).
    """
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for chunk in source:
                if not put(chunk):
                    return
            put(_DONE)
        except BaseException as exc:
            put(_Failure(exc))

    worker = threading.Thread(target=work, name="dbkeeper-stage", daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = q.get(timeout=stall_timeout)
            except queue.Empty:
                raise Stalled(stall_timeout or 0) from None
            if item is _DONE:
                break
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=1)  # a worker blocked in a read ends when its source is closed by the caller


class Tap:
    """Counts (and unless ``digest=False``, hashes) the bytes flowing through ``tap(chunks)``; calls
    ``on_progress`` after each chunk with the running total of bytes so far (not the chunk's own size)."""

    def __init__(self, on_progress: Callable[[int], None] | None = None, *, digest: bool = True) -> None:
        self.sha256 = hashlib.sha256() if digest else None
        self.size = 0
        self._on_progress = on_progress

    def tap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        update = self.sha256.update if self.sha256 else None
        for chunk in chunks:
            if update:
                update(chunk)
            self.size += len(chunk)
            if self._on_progress:
                self._on_progress(self.size)
            yield chunk

    def hexdigest(self) -> str:
        if self.sha256 is None:
            raise ValueError("this tap counts bytes only")
        return self.sha256.hexdigest()


def then(chunks: Iterable[bytes], after: Callable[[], None]) -> Iterator[bytes]:
    """Yield the chunks, then call ``after`` before the consumer sees the end (a last chance to fail)."""
    yield from chunks
    after()
