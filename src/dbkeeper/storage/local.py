"""A directory store.

Atomic put (restic's ``local.Save``): write to a temporary name in the same directory, fsync, rename, fsync the
directory; remove the temporary file on any failure. Only SIGKILL or a crash can leave the temporary file, and
``leftovers`` finds it: the writer's ``flock`` on it tells a dead writer's file from a running one's.

Files are 0600 and directories we create 0700: a backup is a copy of the whole database and must be no easier
to read than the database itself.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from dbkeeper.errors import AlreadyExists, NoSpace, NotFound, PermissionDenied, StoreError
from dbkeeper.fsutil import fsync_dir
from dbkeeper.storage import TEMP_MARK, Leftover, ObjectInfo, check_name, is_valid_name


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
    """Objects are files below ``root``; a name's ``/`` parts are subdirectories.

    Symbolic links below the root are never followed: ``list`` and ``leftovers`` skip them, and ``put`` refuses
    to create an object through a linked directory, so nothing the store does reaches outside its root.
    """

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
        fsync_dir(self.root.parent)  # the first object's durability starts with the root's own entry

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*check_name(name).split("/"))

    def _dir(self, name: str, *, create: bool) -> int:
        """A descriptor of the directory that holds ``name``, reached one part at a time from the root without
        following links (``openat`` with ``O_NOFOLLOW``), so that a directory replaced by a link after any check
        never leads a write or a deletion outside the store. ``create``: make missing directories (0700, each
        made durable in its parent); else FileNotFoundError for a missing one."""
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            if not create and exc.errno == errno.ENOENT:
                raise
            raise _map_os_error(exc, f"opening store directory {self.root}") from exc
        path = self.root
        try:
            for part in name.split("/")[:-1]:
                path = path / part
                if create:
                    try:
                        os.mkdir(part, 0o700, dir_fd=fd)
                    except FileExistsError:
                        pass
                    except OSError as exc:
                        raise _map_os_error(exc, f"creating directory {path}") from exc
                    else:
                        with contextlib.suppress(OSError):
                            os.fsync(fd)
                try:
                    inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise StoreError(
                            f"cannot use {name!r}: {path} is not a directory (or is a symbolic link)",
                            "the store never writes or deletes through links; move what is there aside",
                        ) from None
                    if not create and exc.errno == errno.ENOENT:
                        raise
                    raise _map_os_error(exc, f"opening directory {path}") from exc
                os.close(fd)
                fd = inner
        except BaseException:
            os.close(fd)
            raise
        return fd

    def describe(self, name: str) -> str:
        return str(self._path(name))

    def put(self, name: str, chunks: Iterable[bytes], *, if_absent: bool = False, size_hint: int | None = None) -> int:
        """Write a hidden temporary file beside the object, fsync it, then rename it (``link`` with
        ``if_absent``, which fails instead of replacing) and fsync the directory.

        The writer holds an exclusive ``flock`` on the temporary file until it is renamed or removed: that is how
        ``leftovers`` tells a running write from one whose process died. ``size_hint`` is not needed here.
        Every step is relative to the directory's descriptor (see ``_dir``).
        """
        final = self._path(name)
        self._ensure_root()
        dir_fd = self._dir(name, create=True)
        tmp = f".{final.name}.{secrets.token_hex(4)}{TEMP_MARK}"
        written = flushed = behind = 0
        try:
            try:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_BINARY", 0)
                fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
                with os.fdopen(fd, "wb", buffering=0) as out:  # closing it releases the lock, after the rename
                    fcntl.flock(fd, fcntl.LOCK_EX)
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
                    os.fsync(fd)
                    _write_behind(fd, 0)
                    if os.fstat(fd).st_size != written:
                        raise StoreError(f"short write to {final.parent / tmp}: expected {written} bytes")
                    if if_absent:
                        self._link(dir_fd, tmp, final, name)
                    else:
                        os.replace(tmp, final.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except OSError as exc:
                _unlink(tmp, dir_fd)
                raise _map_os_error(exc, str(final)) from exc
            except BaseException:
                _unlink(tmp, dir_fd)
                raise
            with contextlib.suppress(OSError):
                os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return written

    def _link(self, dir_fd: int, tmp: str, final: Path, name: str) -> None:
        """Give the temporary file its final name unless that name is taken; then drop the temporary name."""
        try:
            os.link(tmp, final.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except FileExistsError:
            raise AlreadyExists(
                f"{final} already exists; it was not replaced",
                f"delete {name!r} first if it should be replaced, or store under another name",
            ) from None
        os.unlink(tmp, dir_fd=dir_fd)

    def open(self, name: str) -> BinaryIO:
        path = self._path(name)
        try:
            return open(path, "rb")
        except OSError as exc:
            raise _map_os_error(exc, str(path)) from exc

    def _walk(self, prefix: str = "", skip: tuple[str, ...] = ()) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """Every regular file below the root whose relative name could start with ``prefix`` (dot-names
        included; symbolic links and the directories they name skipped), as (relative directory, entry).

        Only directories that can hold such names are read, so ``list("host/")`` does not walk the whole tree.
        """
        stack = [""]
        while stack:
            rel = stack.pop()
            try:
                with os.scandir(self.root / rel if rel else self.root) as it:
                    entries = list(it)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise _map_os_error(exc, f"listing {self.root / rel}") from exc
            for entry in entries:
                if entry.is_symlink():
                    continue
                path = f"{rel}{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    wanted = prefix.startswith(path + "/") or path.startswith(prefix)
                    if not entry.name.startswith(".") and wanted and path + "/" not in skip:
                        stack.append(path + "/")
                elif entry.is_file(follow_symlinks=False):
                    yield rel, entry

    def delete(self, name: str) -> None:
        """Remove the file and make that durable; the directories it leaves (maybe empty) stay. Relative to the
        directory's descriptor, as ``put`` (see ``_dir``)."""
        path = self._path(name)
        try:
            dir_fd = self._dir(name, create=False)
        except FileNotFoundError:
            return
        try:
            try:
                os.unlink(path.name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise _map_os_error(exc, f"deleting {path}") from exc
            with contextlib.suppress(OSError):
                os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def leftovers(self) -> list[Leftover]:
        """Temporary files of puts that have not finished: ``in_use`` if a writer still holds the lock."""
        if not self.root.exists():
            return []
        out = []
        for rel, entry in self._walk():
            match = _TEMP_NAME.fullmatch(entry.name)
            if match is None:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
                in_use = _locked(Path(entry.path))
            except FileNotFoundError:  # its put just finished
                continue
            except OSError as exc:
                raise _map_os_error(exc, f"inspecting {entry.path}") from exc
            started = datetime.fromtimestamp(st.st_mtime, UTC)
            key = rel + entry.name
            out.append(Leftover("temporary file", rel + match["name"], key, st.st_size, started, in_use))
        return sorted(out, key=lambda o: o.key)

    def remove_leftover(self, leftover: Leftover) -> None:
        """Unlink a temporary file, unless a running put holds its lock (checked again now, under the lock).

        The path is walked as ``_dir`` walks it: a directory replaced by a link since ``leftovers`` looked never
        leads the removal outside the store.
        """
        parts = leftover.key.split("/")
        if any(p in ("", ".", "..") for p in parts) or not _TEMP_NAME.fullmatch(parts[-1]):
            raise StoreError(f"{leftover.key!r} is not a temporary file of this store; not removed")
        path = self.root.joinpath(*parts)
        try:
            dir_fd = self._dir(leftover.key, create=False)
        except FileNotFoundError:
            return
        try:
            self._remove_locked(dir_fd, parts[-1], path)
        finally:
            os.close(dir_fd)

    @staticmethod
    def _remove_locked(dir_fd: int, file: str, path: Path) -> None:
        try:
            fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _map_os_error(exc, f"removing {path}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(
                    f"{path} is being written by a running backup; not removed",
                    "let that run finish (or stop it) and clean up again",
                ) from None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(file, dir_fd=dir_fd)
            with contextlib.suppress(OSError):
                os.fsync(dir_fd)  # make the removal durable
        except OSError as exc:
            raise _map_os_error(exc, f"removing {path}") from exc
        finally:
            os.close(fd)

    def local_path(self, name: str) -> Path:
        """The file behind an object (local stores only)."""
        return self._path(name)

    def exists(self) -> bool:
        return self.root.is_dir()

    def list(self, prefix: str = "", *, skip: tuple[str, ...] = ()) -> list[ObjectInfo]:
        if not self.root.exists():
            return []
        out = []
        for rel, entry in self._walk(prefix, skip):
            name = rel + entry.name
            if entry.name.startswith(".") or not name.startswith(prefix) or not is_valid_name(name):
                continue  # hidden, elsewhere, or no valid object name (a newline, a backslash: planted)
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # deleted while we listed
                continue
            out.append(ObjectInfo(name, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
        return sorted(out, key=lambda o: o.name)


_TEMP_NAME = re.compile(rf"\.(?P<name>.+)\.[0-9a-f]+{re.escape(TEMP_MARK)}")


def _unlink(name: str, dir_fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def _locked(path: Path) -> bool:
    """Whether some process holds a ``flock`` on the file (a put that is still writing it)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases our lock, if we got it
    return False
