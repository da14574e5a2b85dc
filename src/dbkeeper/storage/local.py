"""A directory store.

Atomic put (restic's ``local.Save``): write to a temporary name in the same directory, fsync, rename, fsync the
directory; remove the temporary file on any failure. Files are 0600 and directories we create 0700: a backup
is a copy of the whole database and must be no easier to read than the database itself.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from dbkeeper.errors import NoSpace, NotFound, PermissionDenied, StoreError
from dbkeeper.fsutil import fsync_dir
from dbkeeper.storage import TEMP_MARK, ObjectInfo


def _map_os_error(exc: OSError, what: str) -> StoreError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return NoSpace(
            f"no space left while writing {what}",
            "free space on that disk or point --store at a larger one; nothing partial was kept",
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDenied(f"permission denied: {what}", "run as the user that owns the store directory")
    if exc.errno == errno.ENOENT:
        return NotFound(f"not found: {what}")
    return StoreError(f"{what}: {exc.strerror or exc}")


WRITE_BEHIND = 8 << 20


def _write_behind(fd: int, offset: int, length: int = 0) -> None:
    """POSIX_FADV_DONTNEED over a range (``length`` 0: to the end). On Linux it starts writing the range's dirty
    pages to disk without waiting, and drops the pages already written from the page cache.

    ``put`` calls it for each 8 MiB written (together with the 8 MiB before, which is on disk by then), so the
    fsync before the rename finds little left to do instead of the whole file (0.08-0.13 s instead of
    0.19-0.23 s for a 118 MB backup, in paired runs), and once more after the fsync: a backup is not kept in
    memory at the expense of the database's own pages.
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):  # only advice
            advise(fd, offset, length, os.POSIX_FADV_DONTNEED)


class LocalStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = Path(path)
        self.url = str(path)

    def _ensure_root(self) -> None:
        if self.root.is_dir():
            return
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise _map_os_error(exc, f"creating store directory {self.root}") from exc

    def _path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise StoreError(f"invalid object name {name!r}")
        return self.root / name

    def describe(self, name: str) -> str:
        return str(self._path(name))

    def put(self, name: str, chunks: Iterable[bytes]) -> int:
        self._ensure_root()
        final = self._path(name)
        tmp = self.root / f".{name}.{secrets.token_hex(4)}{TEMP_MARK}"
        written = flushed = behind = 0
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
            with os.fdopen(fd, "wb", buffering=0) as out:
                for chunk in chunks:
                    view = memoryview(chunk)
                    while view:
                        n = out.write(view)
                        assert n is not None
                        view = view[n:]
                        written += n
                    if written - flushed >= WRITE_BEHIND:
                        _write_behind(fd, behind, written - behind)
                        behind, flushed = flushed, written
                out.flush()
                os.fsync(out.fileno())
                _write_behind(fd, 0)
            if tmp.stat().st_size != written:
                raise StoreError(f"short write to {tmp}: expected {written} bytes")
            os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _map_os_error(exc, str(final)) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.root)
        return written

    def open(self, name: str) -> BinaryIO:
        try:
            return open(self._path(name), "rb")
        except OSError as exc:
            raise _map_os_error(exc, str(self._path(name))) from exc

    def list(self) -> list[ObjectInfo]:
        if not self.root.exists():
            return []
        try:
            entries = list(os.scandir(self.root))
        except OSError as exc:
            raise _map_os_error(exc, f"listing {self.root}") from exc
        out = []
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            st = entry.stat(follow_symlinks=False)
            out.append(ObjectInfo(entry.name, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
        return sorted(out, key=lambda o: o.name)

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as exc:
            raise _map_os_error(exc, f"deleting {self._path(name)}") from exc
        fsync_dir(self.root)

    def local_path(self, name: str) -> Path:
        """The file behind an object (local stores only)."""
        return self._path(name)
