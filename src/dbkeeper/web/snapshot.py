"""The store as the pages see it: one catalog scan, kept between requests and refreshed in the background.

Listing a store and reading every manifest takes seconds once it holds thousands of backups (10,000 sets are
30,000 objects), far more than a page may take. So the dashboard reads the store on a thread of its own: at
start, then whenever a page finds the last read older than ``max_age`` (the page is answered from the last read
at once, and the next one sees the new read), and at once after an action changed the store. Every page of one
request answers from the same snapshot; ``SnapshotRepository`` hands it to the core functions (``status.check``,
``metrics.collect``) as the Repository they expect, so they compute exactly what the commands compute, over the
snapshot's catalog. The WAL archives' health (``pitr.health.survey``: the live RPO, gaps, the PITR window, the
backlog) and the drill records are read with the catalog, so the pages and ``/metrics`` show them without reading
the store again.
Actions and the commands never use a snapshot: they read the store themselves.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dbkeeper.errors import DbkeeperError
from dbkeeper.pitr.health import Survey, survey
from dbkeeper.repo import Catalog, LeftoverState, Repository
from dbkeeper.repo.drills import Found

READ_GAP = 4  # between two reads, at least this many times the last read's duration


@dataclass
class Snapshot:
    catalog: Catalog
    leftovers: list[LeftoverState]
    taken: datetime  # when the scan started (its ``now``)
    seconds: float  # how long it took
    pitr: Survey = field(default_factory=Survey)  # each source's newest WAL archive
    drills: Found = field(default_factory=lambda: Found([]))  # the drill records in the store
    memo: dict[Any, Any] = field(default_factory=dict)  # what pages derive from it, computed once per snapshot

    def age(self, now: datetime) -> timedelta:
        return now - self.taken

    def due(self, now: datetime, max_age: timedelta) -> bool:
        """Whether to read the store again: the snapshot is older than ``max_age``, and the last read ended at least
        ``READ_GAP`` times its own duration ago (a store that takes 30 s to read is read at most every 2.5 minutes,
        so the reads never take more than a fifth of the time, whatever ``max_age`` says)."""
        ended = self.taken + timedelta(seconds=self.seconds)
        return self.age(now) > max_age and now - ended >= timedelta(seconds=self.seconds * READ_GAP)


class SnapshotRepository(Repository):
    """The repository of ``repo``'s store whose catalog and leftovers are the snapshot's (filtered as
    ``catalog.scan`` filters); everything else reads the store."""

    def __init__(self, repo: Repository, snapshot: Snapshot) -> None:
        super().__init__(repo.store, repo.verify_key)
        self.snapshot = snapshot

    def scan(self, now: datetime, *, source: str | None = None, database: str | None = None) -> Catalog:
        found = self.snapshot.catalog
        if source is None and database is None:
            return found
        return Catalog(found.store, found.select(source=source, database=database))

    def leftovers(self, now: datetime, older_than: timedelta | None = None) -> list[LeftoverState]:
        return list(self.snapshot.leftovers)

    def drill_records(self, source: str | None = None) -> Found:
        return self.snapshot.drills if source is None else self.snapshot.drills.of(source)


class Snapshots:
    """The current snapshot of one repository, read again in the background when it is older than ``max_age``."""

    def __init__(
        self,
        repo: Repository,
        max_age: timedelta,
        prepare: Callable[[Snapshot], None] = lambda snap: None,
        data_dir: Path | None = None,
    ) -> None:
        self.repo = repo
        self.max_age = max_age
        self.data_dir = data_dir  # a PITR source's data directory on this host: its .ready backlog
        self.prepare = prepare  # runs on the reading thread before the snapshot is handed out (pages.warm)
        self.error: DbkeeperError | None = None  # what the last read failed with, if it failed
        self._current: Snapshot | None = None
        self._lock = threading.Lock()
        self._reading: threading.Thread | None = None
        self._first = threading.Event()

    def start(self) -> None:
        self._read_in_background()

    def get(self, timeout: float = 600.0) -> Snapshot:
        """The current snapshot (waiting for the first read); DbkeeperError if no read has succeeded yet."""
        now = datetime.now(UTC)
        current = self._current
        if current is None or current.due(now, self.max_age):
            self._read_in_background()
        if current is None:
            self._first.wait(timeout)
            current = self._current
        if current is None:
            raise self.error or DbkeeperError(f"{self.repo.url} could not be read yet", "reload the page")
        return current

    def refresh(self) -> Snapshot:
        """Read the store now (after an action changed it) and make that the current snapshot."""
        return self._read()

    def _read_in_background(self) -> None:
        with self._lock:
            if self._reading is not None and self._reading.is_alive():
                return
            self._reading = threading.Thread(target=self._read_quietly, name="dbkeeper-web-scan", daemon=True)
            self._reading.start()

    def _read_quietly(self) -> None:
        with contextlib.suppress(DbkeeperError):  # kept in self.error, shown by the pages and /healthz
            self._read()

    def _read(self) -> Snapshot:
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            found = self.repo.scan(now)
            leftovers = self.repo.leftovers(now)
            pitr = survey(self.repo.store, now=now, verify_key=self.repo.verify_key, data_dir=self.data_dir)
            drills = self.repo.drill_records()
        except DbkeeperError as exc:
            self.error = exc
            self._first.set()
            raise
        snap = Snapshot(found, leftovers, now, time.perf_counter() - t0, pitr, drills)
        self.prepare(snap)
        with self._lock:
            if self._current is None or self._current.taken <= now:
                self._current = snap
        self.error = None
        self._first.set()
        return snap
