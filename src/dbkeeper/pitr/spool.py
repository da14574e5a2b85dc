"""The WAL daemon's spool: where ``wal-daemon`` leaves acknowledgements for ``wal-push`` and prefetched files for
``wal-fetch``, so that the commands PostgreSQL runs answer in milliseconds.

``wal-push`` and ``wal-fetch`` read the spool on their fast path (dbkeeper/quick.py), before anything else is
imported: this module loads only ``os``, ``fcntl`` and ``time``, and works on path strings.

Layout, under the spool root (``--spool DIR``, else ``$DBKEEPER_STATE_DIR/wal``, else the user's state
directory; see ``root``), one directory per cluster (its archive id, ``<system identifier>-<major>``: what
``wal-push`` learns from the data directory without reading any configuration)::

    <archive id>/daemon.lock       held (flock) by the running daemon: wal-push waits for it only then
    <archive id>/daemon.json       the daemon's state: source, store, data directory, backlog, last push, last error
    <archive id>/pushed/<file>     file, size, sha256, object, source, store, identity: after the store acknowledged
    <archive id>/failed/<file>     why the daemon's last push of <file> failed (wal-push then pushes itself)
    <archive id>/prefetch/<file>   a WAL file read back from the store and checked (hash, signature, header)
    <archive id>/prefetch/.want    the last file wal-fetch was asked for: the daemon fetches what follows

The daemon and archive_command are meant to read the same configuration; an acknowledgement names the source and
store it was pushed to, and ``wal-push`` ignores one that disagrees with its own --source or --store. It does not
read the configuration file on this path (that alone costs more than the answer): ``dbkeeper check`` compares the
running daemon's source and store with the configuration's.

An acknowledgement names the bytes the daemon pushed (size, SHA-256, object) and the file it read them from:
device, inode, size, and nanosecond mtime and ctime, taken before and after the push (no acknowledgement when
they differ). ``wal-push`` answers 0 only when the file PostgreSQL hands it has that identity: one ``stat``, no
read. Re-hashing the file instead was measured (bench/wal_push.py) at 75 ms for 16 MB on a loaded two-core host,
more than the whole budget. The identity is as strong here because a ``.ready`` file is complete: PostgreSQL
never writes it again, recycling renames it to another name (a new ctime), any write moves mtime and ctime, and
ctime cannot be set back by anyone but the kernel; a restored or re-initialised data directory has other inodes.
Everything is written to a temporary name and renamed, so a daemon killed at any point leaves either a complete
file or none; a missing acknowledgement only costs a synchronous push (an identical re-push is a success).
"""

from __future__ import annotations

import fcntl
import os
import time

TYPE_CHECKING = False  # typing itself is not loaded on the fast path
if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager
    from typing import Any

LOCK = "daemon.lock"
STATE = "daemon.json"
WANT = ".want"
_ACK_FIELDS = ("file", "size", "sha256", "object", "source", "store", "identity")
_ACK_HEAD = "dbkeeper-wal-ack 2"  # then one field a line, in _ACK_FIELDS order (no json: it loads re and enum)


def root(explicit: str | None = None) -> str:
    """The spool root: ``explicit`` (``--spool``), else ``wal`` in the state directory (state.py decides where that
    is: ``$DBKEEPER_STATE_DIR``, ``/var/lib/dbkeeper`` for root, the XDG state directory for anyone else, such as
    the ``postgres`` user archive_command runs as)."""
    if explicit:
        return explicit
    from dbkeeper.state import state_root

    return os.path.join(state_root(), "wal")


def store_key(url: str) -> str:
    """A store URL as acknowledgements compare it: a directory made absolute (the daemon and archive_command may
    run from different working directories)."""
    return url if "://" in url else os.path.abspath(url)


class Ack:
    """What the daemon pushed: the file's size and SHA-256, the object, and where (source, store)."""

    __slots__ = _ACK_FIELDS

    def __init__(self, file: str, size: int, sha256: str, object: str, source: str, store: str, identity: str) -> None:
        self.file, self.size, self.sha256 = file, size, sha256
        self.object, self.source, self.store = object, source, store
        self.identity = identity  # file_identity() of the file the daemon read

    def to_text(self) -> str:
        fields = [str(getattr(self, k)) for k in _ACK_FIELDS]
        if any("\n" in f for f in fields):
            raise ValueError("an acknowledgement field holds a newline")
        return "\n".join([_ACK_HEAD, *fields]) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Ack | None:
        lines = text.split("\n")
        if len(lines) != len(_ACK_FIELDS) + 2 or lines[0] != _ACK_HEAD or lines[-1] or not lines[2].isdigit():
            return None
        file, size, sha256, obj, source, store, identity = lines[1:-1]
        return cls(file, int(size), sha256, obj, source, store, identity)


class Spool:
    """One cluster's spool directory (paths are strings: see the module's docstring)."""

    def __init__(self, root: str | os.PathLike[str], aid: str) -> None:
        self.root = os.fspath(root)
        self.aid = aid
        self.dir = os.path.join(self.root, aid)
        self.pushed = os.path.join(self.dir, "pushed")
        self.failed = os.path.join(self.dir, "failed")
        self.prefetch = os.path.join(self.dir, "prefetch")
        self.lock_path = os.path.join(self.dir, LOCK)
        self.state_path = os.path.join(self.dir, STATE)

    # -- written by the daemon

    def make(self) -> None:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        for d in (self.dir, self.pushed, self.failed, self.prefetch):
            os.makedirs(d, mode=0o700, exist_ok=True)

    def daemon_lock(self) -> AbstractContextManager[bool]:
        """Hold the daemon lock for the block; yields False (holding nothing) when another daemon has it."""
        import contextlib

        @contextlib.contextmanager
        def held() -> Iterator[bool]:
            self.make()
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                yield True
            finally:
                os.close(fd)

        return held()

    def acknowledge(self, ack: Ack) -> None:
        """Record that the store holds ``ack.file`` with these bytes; clears an earlier failure."""
        _write(os.path.join(self.pushed, ack.file), ack.to_text())
        _unlink(os.path.join(self.failed, ack.file))

    def record_failure(self, file: str, message: str) -> None:
        _write(os.path.join(self.failed, file), message.strip() + "\n")

    def write_state(self, doc: dict[str, Any]) -> None:
        import json

        _write(self.state_path, json.dumps(doc, indent=2) + "\n")

    def clean_temporaries(self) -> None:
        """Remove what a killed daemon left half-written (temporary names start with a dot, end .tmp or -tmp)."""
        for top, _dirs, files in os.walk(self.dir):
            for name in files:
                if name.startswith(".") and name.endswith((".tmp", "-tmp")):
                    _unlink(os.path.join(top, name))

    # -- read by wal-push, wal-fetch and status

    def daemon_running(self) -> bool:
        """True while a daemon holds the lock (a lock dies with its process, kill -9 included)."""
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def state(self) -> dict[str, Any] | None:
        """The daemon's last written state; None without one."""
        import json

        try:
            with open(self.state_path, "rb") as f:
                doc = json.loads(f.read())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def ack(self, file: str) -> Ack | None:
        try:
            with open(os.path.join(self.pushed, file), encoding="utf-8") as f:
                return Ack.from_text(f.read(8192))
        except (OSError, ValueError):
            return None

    def answer(self, path: str, *, source: str | None, store: str | None, wait: float, datadir: str) -> bool:
        """True when the daemon pushed ``path``'s exact bytes (to ``source`` and ``store`` when those are given):
        waits up to ``wait`` seconds while a daemon watching ``datadir`` runs and has neither acknowledged nor
        failed the file yet. False means: push it yourself."""
        file = os.path.basename(path)
        deadline = time.monotonic() + wait
        waiting_on_daemon: bool | None = None
        while True:
            ack = self.ack(file)
            if ack is not None:
                return (
                    ack.file == file
                    and source in (None, ack.source)
                    and (store is None or store_key(store) == ack.store)
                    and file_identity(path) == ack.identity
                )
            if os.path.exists(os.path.join(self.failed, file)):
                return False
            if waiting_on_daemon is None:
                state = self.state() or {}
                waiting_on_daemon = self.daemon_running() and _same_dir(state.get("data_dir"), datadir)
            if not waiting_on_daemon or time.monotonic() > deadline:
                return False
            time.sleep(0.005)

    def forget(self, file: str) -> None:
        """Drop the acknowledgement once PostgreSQL has been told (it renames .ready to .done next)."""
        _unlink(os.path.join(self.pushed, file))

    def take_prefetched(self, file: str, dest: str) -> bool:
        """Move a prefetched ``file`` to ``dest`` (a rename; a copy and rename across file systems); False when it
        was not prefetched. Also tells the daemon what was asked for, so it fetches what follows."""
        if not os.path.isdir(self.prefetch):
            return False
        try:  # noqa: SIM105 (contextlib is not loaded on the fast path)
            _write(os.path.join(self.prefetch, WANT), file, fsync=False)
        except OSError:
            pass
        src = os.path.join(self.prefetch, file)
        try:
            os.rename(src, dest)
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            import errno

            if exc.errno != errno.EXDEV:
                raise
        import shutil

        tmp = os.path.join(os.path.dirname(dest), f".{os.path.basename(dest)}.dbkeeper-tmp")
        try:
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        except BaseException:
            _unlink(tmp)
            raise
        _unlink(src)
        return True

    def wanted(self) -> str | None:
        try:
            with open(os.path.join(self.prefetch, WANT)) as f:
                return f.read().strip() or None
        except OSError:
            return None


def file_identity(path: str) -> str | None:
    """Which file this is, as the kernel says without reading it: device, inode, size, and the nanosecond
    modification and change times (ctime moves on every write and rename and cannot be set back); None when
    there is no such file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _same_dir(a: object, b: str) -> bool:
    if not isinstance(a, str):
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _unlink(path: str) -> None:
    try:  # noqa: SIM105 (contextlib is not loaded on the fast path)
        os.unlink(path)
    except FileNotFoundError:
        pass


def _write(path: str, text: str, *, fsync: bool = True) -> None:
    """Replace ``path`` atomically: a temporary name in the same directory, fsync, rename, fsync the directory;
    nothing is left on failure (fsutil.write_atomic, without its imports)."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}-{id(text):x}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, text.encode())
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    if fsync:
        dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
