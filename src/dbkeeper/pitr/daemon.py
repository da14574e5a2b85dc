"""``wal-daemon``: push WAL files ahead of PostgreSQL's archiver, and fetch them ahead of its recovery.

Archiving. Every ``poll`` seconds (50 ms: a scan of a small directory) the daemon lists
``pg_wal/archive_status/*.ready`` and hands the files not yet acknowledged, oldest first, to ``parallel``
workers that push them through ``WalArchive.push`` (the same checks, hash, compression, encryption and signature
as ``wal-push``). Only after the store acknowledged a file does the
daemon write its acknowledgement to the spool; ``wal-push``, run by PostgreSQL for that file, then finds it,
re-hashes the file and exits 0 without touching the store. The daemon never renames a ``.ready`` file: only
PostgreSQL does that, after ``wal-push`` exited 0, so a daemon that dies (kill -9 included) loses nothing: the
file stays ``.ready``, ``wal-push`` finds no daemon and pushes it itself, and a push the daemon completed before
dying is found in the store as the same bytes (a duplicate, which is success).

A failed push is recorded in the spool (``wal-push`` then pushes synchronously and reports the error to the
server's log) and retried after a back-off.

Recovery (``prefetch`` > 0). ``wal-fetch`` notes in the spool which file PostgreSQL asked for; the daemon fetches
the next ``prefetch`` segments of that timeline into the spool, each read back and checked by
``WalArchive.fetch`` (hash, signature, header), and ``wal-fetch`` serves them by a rename. The spool never holds
more than ``prefetch`` files; those PostgreSQL has gone past are removed.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dbkeeper.errors import DbkeeperError, UsageError
from dbkeeper.pitr import datadir, walfile
from dbkeeper.pitr.archive import WalArchive, WalMissing
from dbkeeper.pitr.spool import Ack, Spool, file_identity

RETRY_AFTER = 5.0  # seconds before a failed push is tried again
FORGET_AFTER = 600.0  # an acknowledgement PostgreSQL never asked for (it archived the file itself) goes then
STATE_EVERY = 1.0


@dataclass
class Stats:
    pushed: int = 0
    duplicates: int = 0
    failed: int = 0
    prefetched: int = 0
    last_pushed: str | None = None
    last_pushed_at: str | None = None
    last_error: str | None = None
    backlog_files: int = 0
    backlog_bytes: int = 0
    oldest_ready_seconds: float = 0.0
    push_seconds: list[float] = field(default_factory=list)  # the latest pushes' durations, for the state file


class Daemon:
    def __init__(
        self,
        archive: WalArchive,
        data_dir: Path,
        spool_root: str | os.PathLike[str],
        store: str,
        *,
        parallel: int = 4,
        prefetch: int = 0,
        poll: float = 0.05,
        log: Callable[[str], None] = lambda line: None,
    ) -> None:
        if parallel < 1 or prefetch < 0:
            raise UsageError("--parallel must be 1 or more and --prefetch 0 or more")
        cluster = datadir.cluster_of(data_dir)
        if cluster is None:
            raise UsageError(f"{data_dir} is not a PostgreSQL data directory", "--data-dir names the cluster's PGDATA")
        self.archive = archive
        self.data_dir = data_dir
        self.cluster = cluster
        self.aid = cluster.archive_id
        self.spool = Spool(spool_root, cluster.archive_id)
        self.store = store
        self.parallel = parallel
        self.prefetch = prefetch
        self.poll = poll
        self.log = log
        self.stats = Stats()
        self._pushing: dict[str, Future[Any]] = {}
        self._fetching: dict[str, Future[Any]] = {}
        self._retry: dict[str, float] = {}
        self._done: set[str] = set()  # pushed by this daemon and still .ready: wal-push may have used the ack
        self._absent: tuple[str, float] | None = None  # (file, when) the archive did not hold it
        self._seg_size: int | None = None
        self._started = datetime.now(UTC)

    def run(self, stop: threading.Event) -> None:
        """Until ``stop`` is set; UsageError when another daemon already serves this cluster's spool."""
        with self.spool.daemon_lock() as mine:
            if not mine:
                raise UsageError(
                    f"another wal-daemon already runs for this cluster ({self.spool.lock_path})",
                    "run one daemon per data directory; stop the other first",
                )
            self.spool.clean_temporaries()
            last_state = 0.0
            with ThreadPoolExecutor(self.parallel, thread_name_prefix="wal-daemon") as pool:
                try:
                    while not stop.is_set():
                        self.step(pool)
                        if time.monotonic() - last_state >= STATE_EVERY:
                            self._write_state()
                            last_state = time.monotonic()
                        stop.wait(self.poll)
                finally:
                    for fut in (*self._pushing.values(), *self._fetching.values()):
                        fut.cancel()
                self._write_state(running=False)

    def step(self, pool: ThreadPoolExecutor) -> None:
        now = time.monotonic()
        ready = datadir.ready(self.data_dir)
        self._collect(now)
        names = {r.name.text for r in ready}
        self._done &= names
        for r in ready:
            file = r.name.text
            if len(self._pushing) >= self.parallel * 2:
                break
            if file in self._done or file in self._pushing or self._retry.get(file, 0) > now:
                continue
            if os.path.exists(os.path.join(self.spool.pushed, file)):
                continue
            self._pushing[file] = pool.submit(self._push, file)
        wall = time.time()
        self.stats.backlog_files = len(ready)
        self.stats.backlog_bytes = sum(r.size for r in ready)
        self.stats.oldest_ready_seconds = round(max((wall - r.since for r in ready), default=0.0), 3)
        self._forget(names, wall)
        if self.prefetch:
            self._prefetch(pool, now)

    # -- archiving

    def _push(self, file: str) -> float:
        t0 = time.monotonic()
        path = self.data_dir / "pg_wal" / file
        before = file_identity(str(path))
        result = self.archive.push(path, self.cluster)
        if before is None or file_identity(str(path)) != before:
            return time.monotonic() - t0  # it changed while read: wal-push pushes what is there then
        self.spool.acknowledge(
            Ack(file, result.raw_bytes, result.sha256, result.object, self.archive.source_id, self.store, before)
        )
        if result.duplicate:
            self.stats.duplicates += 1
        return time.monotonic() - t0

    def _collect(self, now: float) -> None:
        for file, fut in list(self._pushing.items()):
            if not fut.done():
                continue
            del self._pushing[file]
            exc = fut.exception()
            if exc is None:
                self.stats.pushed += 1
                self.stats.last_pushed = file
                self.stats.last_pushed_at = _iso(datetime.now(UTC))
                self.stats.push_seconds = [*self.stats.push_seconds[-99:], round(fut.result(), 4)]
                self._retry.pop(file, None)
                self._done.add(file)
                continue
            if isinstance(exc, FileNotFoundError) or (
                isinstance(exc, DbkeeperError) and not (self.data_dir / "pg_wal" / file).exists()
            ):
                continue  # PostgreSQL archived it itself meanwhile and recycled it
            message = exc.message if isinstance(exc, DbkeeperError) else f"{type(exc).__name__}: {exc}"
            self.stats.failed += 1
            self.stats.last_error = f"{file}: {message}"
            self._retry[file] = now + RETRY_AFTER
            with contextlib.suppress(OSError):
                self.spool.record_failure(file, message)
            self.log(
                f"dbkeeper wal-daemon: {file}: {message} (wal-push pushes it itself; retrying in {RETRY_AFTER:g}s)"
            )
        for file, fut in list(self._fetching.items()):
            if fut.done():
                del self._fetching[file]
                exc = fut.exception()
                if exc is None:
                    self.stats.prefetched += 1
                elif isinstance(exc, WalMissing):
                    self._absent = (file, now)
                else:
                    message = exc.message if isinstance(exc, DbkeeperError) else f"{type(exc).__name__}: {exc}"
                    self.stats.last_error = f"prefetch {file}: {message}"
                    self._absent = (file, now)
                    self.log(f"dbkeeper wal-daemon: prefetch {file}: {message} (wal-fetch reads it itself)")

    def _forget(self, ready: set[str], wall: float) -> None:
        """Drop acknowledgements and failures of files no longer .ready: wal-push used (and removed) most of
        them; the rest are files PostgreSQL archived another way."""
        for d in (self.spool.pushed, self.spool.failed):
            with contextlib.suppress(OSError):
                for entry in os.scandir(d):
                    if entry.name in ready or entry.name.startswith("."):
                        continue
                    with contextlib.suppress(OSError):
                        if wall - entry.stat().st_mtime > (FORGET_AFTER if d == self.spool.pushed else 0):
                            os.unlink(entry.path)

    # -- prefetching

    def _prefetch(self, pool: ThreadPoolExecutor, now: float) -> None:
        want = self.spool.wanted()
        try:
            name = walfile.WalName.parse(want) if want else None
        except walfile.WalRefused:
            name = None
        if name is None or name.kind != "segment":
            return
        if self._seg_size is None:
            info = self.archive.info(self.aid)
            if info is None:
                return
            self._seg_size = info.seg_size
        seg = self._seg_size
        first = name.segno(seg)
        targets = [walfile.segment_name(name.timeline, first + i, seg) for i in range(1, self.prefetch + 1)]
        where = Path(self.spool.prefetch)
        with contextlib.suppress(OSError):
            for entry in os.scandir(where):
                if not entry.name.startswith(".") and entry.name not in targets and entry.name not in self._fetching:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)  # gone past, or another timeline's
        for file in targets:
            if len(self._fetching) >= self.parallel:
                break
            if self._absent and self._absent[0] == file and now - self._absent[1] < 1.0:
                break  # past the archive's end (for now): ask again in a second
            if file in self._fetching or (where / file).exists():
                continue
            self._fetching[file] = pool.submit(self.archive.fetch, self.aid, file, where / file, self.cluster)

    # -- state

    def _write_state(self, running: bool = True) -> None:
        s = self.stats
        doc = {
            "pid": os.getpid(),
            "running": running,
            "source": self.archive.source_id,
            "archive_id": self.aid,
            "data_dir": str(self.data_dir.resolve()),
            "store": self.store,
            "parallel": self.parallel,
            "prefetch": self.prefetch,
            "started_at": _iso(self._started),
            "updated_at": _iso(datetime.now(UTC)),
            "pushed": s.pushed,
            "duplicates": s.duplicates,
            "failed": s.failed,
            "prefetched": s.prefetched,
            "last_pushed": s.last_pushed,
            "last_pushed_at": s.last_pushed_at,
            "last_error": s.last_error,
            "backlog": {
                "files": s.backlog_files,
                "bytes": s.backlog_bytes,
                "oldest_seconds": s.oldest_ready_seconds,
            },
            "recent_push_seconds": s.push_seconds[-20:],
        }
        with contextlib.suppress(OSError):
            self.spool.write_state(doc)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
