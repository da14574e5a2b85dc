"""Client-side encryption in the age format (https://age-encryption.org), readable by the stock ``age`` tool.

The backup host needs only public recipients (``age1…``); the identity (``AGE-SECRET-KEY-1…``) is needed only to
verify or restore. Encryption wraps the compressed stream, so checksums cover exactly the stored bytes.
pyrage's ``encrypt_io``/``decrypt_io`` pull from a reader and push to a writer; here they run on a worker thread
between two bounded queues so that they stream like every other stage.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from dbkeeper.errors import EncryptionError, UsageError

_DONE = object()
WRONG_KEY = "the backup is not for this identity"
IDENTITY_HINT = "pass --identity with the age key of one of the recipients the backup's manifest lists"


def parse_recipients(values: Iterable[str]) -> list[Any]:
    import pyrage

    out = []
    for value in values:
        value = value.strip()
        try:
            out.append(pyrage.x25519.Recipient.from_str(value))
        except Exception as exc:
            raise UsageError(
                f"{value[:20]!r} is not an age X25519 recipient",
                "give the public key printed by `age-keygen` (it starts with age1)",
            ) from exc
    if not out:
        raise UsageError("no age recipients given")
    return out


def load_identities(path: str | os.PathLike[str]) -> list[Any]:
    """The X25519 identities in an age identity file (as written by ``age-keygen -o``)."""
    import pyrage

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"cannot read identity file {path}: {exc.strerror}") from exc
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("AGE-SECRET-KEY-"):
            try:
                out.append(pyrage.x25519.Identity.from_str(line))
            except Exception as exc:
                raise UsageError(f"identity file {path} holds a malformed key") from exc
    if not out:
        raise UsageError(f"identity file {path} holds no AGE-SECRET-KEY line", "use the file age-keygen wrote")
    return out


class _Reader:
    """A file-like ``read(n)`` over an iterator of chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                self._buf += next(self._it)
            except StopIteration:
                break
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


class _Writer:
    def __init__(self, q: queue.Queue[object], stop: threading.Event) -> None:
        self._q = q
        self._stop = stop
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> int:
        self._pending.append(bytes(data))
        self._size += len(data)
        if self._size >= 1 << 20:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._pending:
            block = b"".join(self._pending)
            self._pending, self._size = [], 0
            while not self._stop.is_set():
                try:
                    self._q.put(block, timeout=0.2)
                    return
                except queue.Full:
                    continue
            raise EncryptionError("stopped")


def _run(work: Callable[[_Reader, _Writer], None], chunks: Iterable[bytes]) -> Iterator[bytes]:
    q: queue.Queue[object] = queue.Queue(maxsize=4)
    stop = threading.Event()
    writer = _Writer(q, stop)
    failure: list[BaseException] = []

    def body() -> None:
        try:
            work(_Reader(chunks), writer)
            writer.flush()
        except BaseException as exc:
            failure.append(exc)
        finally:
            while not stop.is_set():
                try:
                    q.put(_DONE, timeout=0.2)
                    break
                except queue.Full:
                    continue

    worker = threading.Thread(target=body, name="dbkeeper-age", daemon=True)
    worker.start()
    try:
        while (item := q.get()) is not _DONE:
            yield item  # type: ignore[misc]
        if failure:
            raise failure[0]
    finally:
        stop.set()
        worker.join(timeout=10)


def encrypt(chunks: Iterable[bytes], recipients: list[Any]) -> Iterator[bytes]:
    import pyrage

    def work(reader: _Reader, writer: _Writer) -> None:
        pyrage.encrypt_io(reader, writer, recipients)

    return _run(work, chunks)


def decrypt(chunks: Iterable[bytes], identities: list[Any]) -> Iterator[bytes]:
    import pyrage

    def work(reader: _Reader, writer: _Writer) -> None:
        try:
            pyrage.decrypt_io(reader, writer, identities)
        except pyrage.DecryptError as exc:
            if "no matching keys" in str(exc).lower():
                raise EncryptionError(
                    f"{WRONG_KEY}: none of its keys matches the backup's recipients",
                    IDENTITY_HINT,
                ) from exc
            raise EncryptionError(f"the encrypted backup is damaged or not an age file ({exc})") from exc
        except (OSError, ValueError) as exc:
            if isinstance(exc, EncryptionError):
                raise
            raise EncryptionError(f"the encrypted backup is damaged or truncated ({exc})") from exc

    return _run(work, chunks)
