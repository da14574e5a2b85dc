"""One lock per source, so that cron, a timer and a manual run never back up the same database at once.

The lock is ``flock`` (``msvcrt.locking`` on Windows) on a file in the lock directory: exclusive and
non-blocking, so a second run fails at once with LockHeld instead of queueing behind the first. The kernel
drops it when its holder exits in any way, SIGKILL included, so a crash never leaves a stale lock; the file
itself stays (removing it would let a third run lock a fresh file while a second still holds the old one).

Directory: ``$DBKEEPER_LOCK_DIR``, else ``locks`` in the state directory (state.py: ``/var/lib/dbkeeper`` as
root, ``~/.local/state/dbkeeper`` otherwise). Not ``$XDG_RUNTIME_DIR``: cron jobs and system services run
without it while login shells have it, so a manual run and the scheduled one would lock in two different places
and never see each other. Runs as different users share a lock only through a
``DBKEEPER_LOCK_DIR`` they can all write.

File name: a readable name (the database) and a hash of what identifies the source (engines.SourceKey): host, port and
database name for PostgreSQL (not the user or password: two users backing up one database still collide),
the real path of a SQLite file. The holder writes its pid and start time into the file for the message.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from dbkeeper import state
from dbkeeper.engines import SourceKey, source_key
from dbkeeper.errors import DbkeeperError, LockHeld

_HELD = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, getattr(errno, "EDEADLOCK", errno.EDEADLK)}
_WINDOWS_LOCK_OFFSET = 1 << 30  # msvcrt locks are mandatory: lock a byte far past the text others must read


def lock_dir() -> Path:
    return state.lock_dir()


def identity(url: str) -> tuple[str, str]:
    """(readable name, canonical identity) of a source URL; never holds a user name or password."""
    key = source_key(url)
    return key.readable, key.canonical


def lock_path(source: str | SourceKey, directory: Path | None = None) -> Path:
    """The lock file of a source (its URL, or its engine's key)."""
    key = source_key(source) if isinstance(source, str) else source
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", key.readable)[:40] or "source"
    digest = hashlib.sha256(key.canonical.encode()).hexdigest()[:16]
    return (directory or lock_dir()) / f"{readable}-{digest}.lock"


class SourceLock:
    """``with SourceLock(source, label):`` holds the source's lock or raises LockHeld at once; ``source`` is a URL
    or an engine's key (``engine.key()``)."""

    def __init__(self, source: str | SourceKey, label: str, directory: Path | None = None) -> None:
        self.path = lock_path(source, directory)
        self.label = label
        self._fd: int | None = None

    def __enter__(self) -> SourceLock:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise DbkeeperError(
                f"cannot create the lock file {self.path}: {exc.strerror}",
                "set DBKEEPER_LOCK_DIR to a directory this user can write",
            ) from exc
        try:
            _lock(fd)
        except OSError as exc:
            holder = _read(fd)
            os.close(fd)
            if exc.errno not in _HELD:
                raise DbkeeperError(f"cannot lock {self.path}: {exc.strerror}") from exc
            raise _held(self.label, holder, self.path) from None
        holder_doc = {"pid": os.getpid(), "since": _now().isoformat(), "host": socket.gethostname()}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps({**holder_doc, "source": self.label}).encode())
        self._fd = fd
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            _unlock(fd)
        finally:
            os.close(fd)


def _held(label: str, holder: dict[str, object], path: Path) -> LockHeld:
    pid = holder.get("pid")
    since = _since(str(holder.get("since", "")))
    who = f"pid {pid}" if pid else "pid unknown"
    if holder.get("host") and holder.get("host") != socket.gethostname():
        who += f" on {holder['host']}"
    look = f"; see it with: ps -fp {pid}" if pid else ""
    return LockHeld(
        f"another dbkeeper backup of {label} is running ({who}{', since ' + since if since else ''})",
        f"wait for it to finish: its lock goes when it exits, even if killed{look} (lock file {path})",
    )


def _since(text: str) -> str:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return ""
    return when.strftime("%H:%M:%S UTC" if when.date() == _now().date() else "%Y-%m-%d %H:%M:%S UTC")


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _read(fd: int) -> dict[str, object]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        doc = json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


if sys.platform == "win32":
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
