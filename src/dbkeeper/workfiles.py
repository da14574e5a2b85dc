"""Working files dbkeeper keeps on this host while a command runs, and what a killed command left of them.

Two kinds: a private working directory in the temporary directory (``dbkeeper-work-…``: a SQLite copy being
checked by ``verify``, a backup's snapshot, a spooled archive), and a restore's temporary file beside its target
(``.<target>.<random>.dbkeeper-tmp``, with the ``-wal``/``-shm``/``-journal`` files SQLite may add to it).

Each is held with an ``flock`` for as long as its command uses it and removed on every way out the process sees
(an error, SIGINT, SIGTERM). SIGKILL or a power cut cannot be seen: what they leave is not locked by anyone, so it
is told apart from a running command's without guessing from its age (each is created under another name, locked,
then renamed to the name looked for: no moment exists where it has that name and no lock). The next command that
makes a working directory removes stale ones, a SQLite restore removes stale temporaries beside its target, and
``dbkeeper cleanup`` finds both (the temporary directory, and beside the config's SQLite sources).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dbkeeper.errors import DbkeeperError

WORKDIR_PREFIX = "dbkeeper-work-"
TEMP_SUFFIX = ".dbkeeper-tmp"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
NEW_MARK = ".dbkeeper-new"  # the name before the lock is held: never looked for

WORKING_DIRECTORY, TEMPORARY_FILE = "working directory", "restore temporary file"


@dataclass(frozen=True)
class HostLeftover:
    kind: str  # WORKING_DIRECTORY | TEMPORARY_FILE
    path: Path
    size: int
    age: float  # seconds since it last changed
    in_use: bool  # a running command holds it

    def stale(self, min_age: float = 0.0) -> bool:
        return not self.in_use and self.age >= min_age


class WorkDir:
    """A private (0700) directory in the temporary directory, locked until ``close`` removes it. Making one
    first removes the working directories dead commands left."""

    def __init__(self, kind: str) -> None:
        sweep()
        new = Path(tempfile.mkdtemp(prefix=NEW_MARK))
        self._fd: int | None = os.open(new, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.path = new.parent / f"{WORKDIR_PREFIX}{kind}-{secrets.token_hex(6)}"
        os.rename(new, self.path)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.close()


class TempBeside:
    """A new, empty temporary file beside ``target`` (``.<name>.<random>.dbkeeper-tmp``), locked until ``close``
    or ``release``. Making one first removes stale temporaries of the same target."""

    def __init__(self, target: Path) -> None:
        sweep(beside=[target])
        fd, new = tempfile.mkstemp(prefix=f".{target.name}.", suffix=NEW_MARK, dir=target.parent)
        self._fd: int | None = fd
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.path = target.parent / f".{target.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
        os.rename(new, self.path)

    def release(self) -> None:
        """Let go of the lock (the file was renamed into place: it is no temporary any more)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        """Remove the file and what SQLite may have put beside it, then let go of the lock."""
        for path in (self.path, *(Path(f"{self.path}{s}") for s in SQLITE_SIDE_FILES)):
            path.unlink(missing_ok=True)
        self.release()


def find(beside: Iterable[Path] = ()) -> list[HostLeftover]:
    """Working directories in the temporary directory, and restore temporaries beside each path of ``beside``."""
    out = []
    base = Path(tempfile.gettempdir())
    for path in _entries(base, lambda n: n.startswith(WORKDIR_PREFIX)):
        found = _leftover(WORKING_DIRECTORY, path, stat.S_ISDIR)
        if found is not None:
            out.append(found)
    for target in beside:
        pattern = re.compile(re.escape(f".{target.name}.") + r"[A-Za-z0-9_]+" + re.escape(TEMP_SUFFIX) + "$")
        for path in _entries(target.parent, pattern.match):
            found = _leftover(TEMPORARY_FILE, path, stat.S_ISREG)
            if found is not None:
                out.append(found)
    return out


def remove(leftover: HostLeftover) -> None:
    """Remove one leftover ``find`` returned, unless a command took it since (its lock is held); gone is fine."""
    try:
        _remove(leftover)
    except OSError as exc:
        raise DbkeeperError(f"cannot remove {leftover.path}: {exc.strerror or exc}") from exc


def _remove(leftover: HostLeftover) -> None:
    try:
        fd = os.open(leftover.path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return
    try:
        if leftover.kind == WORKING_DIRECTORY:
            shutil.rmtree(leftover.path, ignore_errors=True)
        else:
            for path in (leftover.path, *(Path(f"{leftover.path}{s}") for s in SQLITE_SIDE_FILES)):
                path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def sweep(beside: Iterable[Path] = (), min_age: float = 0.0) -> None:
    """Remove the stale leftovers ``find`` sees; never fails the command that calls it."""
    with contextlib.suppress(OSError):
        for leftover in find(beside):
            if leftover.stale(min_age):
                with contextlib.suppress(OSError):
                    _remove(leftover)


def _entries(directory: Path, wanted: Callable[[str], object]) -> Iterator[Path]:
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if wanted(name):
            yield directory / name


def _leftover(kind: str, path: Path, is_kind: Callable[[int], bool]) -> HostLeftover | None:
    """What ``path`` is, if it is a leftover of ours: of its kind, not a link, owned by this user."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not is_kind(st.st_mode) or st.st_uid != os.getuid():
        return None
    size = st.st_size
    if kind == WORKING_DIRECTORY:
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return HostLeftover(kind, path, size, max(0.0, time.time() - st.st_mtime), _locked(path))


def _locked(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return True  # cannot tell: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
