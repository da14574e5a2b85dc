"""How each source's WAL archive is doing right now: what ``status`` judges and the metrics export.

For the newest archive (cluster) of each source under ``pitr/``: the wal-verify report (pitr.walverify: gaps,
duplicates, history; names only, nothing read back), the time the store received the newest archived segment
(the live RPO: how much would be lost if the server died now), the PITR window, and the ``.ready`` backlog, read
from the data directory when it is here and readable, else from the WAL daemon's state in its spool (written
every second while it runs), else unknown.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dbkeeper.errors import DbkeeperError
from dbkeeper.pitr import datadir, spool
from dbkeeper.pitr.archive import WalArchive, sources
from dbkeeper.pitr.walverify import DEFAULT_DELAY, ArchiveReport, BaseStart, verify
from dbkeeper.signing import VerifyKey
from dbkeeper.storage import Store
from dbkeeper.units import format_duration, human_size

STATE_FRESH = 30.0  # seconds: a daemon state older than this is not a backlog reading


@dataclass(frozen=True)
class Backlog:
    files: int
    bytes: int
    oldest_seconds: float
    origin: str  # "data directory" | "wal-daemon"

    def describe(self) -> str:
        oldest = format_duration(timedelta(seconds=self.oldest_seconds))
        return f"{self.files} waiting ({human_size(self.bytes)}, oldest {oldest})"

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "bytes": self.bytes, "oldest_seconds": self.oldest_seconds, "from": self.origin}


@dataclass(frozen=True)
class Health:
    source_id: str
    report: ArchiveReport
    backlog: Backlog | None

    @property
    def archive_id(self) -> str:
        return self.report.info.archive_id

    @property
    def last_archived(self) -> datetime | None:
        return self.report.newest.stored if self.report.newest else None

    @property
    def newest_base(self) -> BaseStart | None:
        """The good base backup that ended last (None when there is none)."""
        dated = [b for b in self.report.base_backups if b.stop_time is not None]
        return max(dated, key=lambda b: b.stop_time or datetime.min.replace(tzinfo=UTC), default=None)

    @property
    def no_window(self) -> str | None:
        """Why there is no PITR window (None when there is one)."""
        if self.report.window is not None:
            return None
        return "no good base backup" if not self.report.base_backups else "no WAL archived after the base backup yet"


@dataclass
class Survey:
    """Every source's archive health, and the sources whose archive could not be read (source id, why): one
    damaged ``archive.json`` is that source's CRITICAL, not a failure of everyone's status."""

    found: list[Health] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def of(self, source: str | None) -> Survey:
        """What was found of one source (all of it for None)."""
        if source is None:
            return self
        return Survey([h for h in self.found if h.source_id == source], [e for e in self.errors if e[0] == source])


def survey(
    store: Store,
    *,
    now: datetime,
    source: str | None = None,
    verify_key: VerifyKey | None = None,
    identities: Iterable[Any] | None = None,
    data_dir: Path | None = None,
    spool_root: str | None = None,
    delay: timedelta = DEFAULT_DELAY,
) -> Survey:
    """The health of every source's newest archive (or of ``source``'s): what ``status``, the metrics and the
    dashboard show. ``data_dir`` counts the backlog of the archive whose cluster it is."""
    out = Survey()
    for sid in sources(store):
        if source is not None and sid != source:
            continue
        try:
            archive = WalArchive(store, sid, identities=identities, verify_key=verify_key)
            h = health(archive, now=now, data_dir=data_dir, spool_root=spool_root, delay=delay)
        except DbkeeperError as exc:
            out.errors.append((sid, exc.message))
            continue
        if h is not None:
            out.found.append(h)
    return out


def health(
    archive: WalArchive,
    *,
    now: datetime,
    data_dir: Path | None = None,
    spool_root: str | None = None,
    delay: timedelta = DEFAULT_DELAY,
) -> Health | None:
    """The newest archive's health; None when the source has none. A hole just before segments received within
    ``delay`` is DELAYED (status passes its max_wal_age: lateness it tolerates anyway). History files are not
    read when they are encrypted and no identity is given (noted in the report)."""
    ids = archive.ids()
    if not ids:
        return None
    aid = ids[-1].archive_id
    encrypted = any(e.encrypted for e in archive.files(aid) if e.name.kind == "history")
    report = verify(archive, aid, now=now, delay=delay, read_history=archive.identities is not None or not encrypted)
    return Health(archive.source_id, report, backlog(aid, data_dir, spool_root))


def backlog(aid: str, data_dir: Path | None, spool_root: str | None) -> Backlog | None:
    if data_dir is not None:
        cluster = datadir.cluster_of(data_dir)
        if cluster is not None and cluster.archive_id == aid:
            ready = datadir.ready(data_dir)
            wall = time.time()
            oldest = max((wall - r.since for r in ready), default=0.0)
            return Backlog(len(ready), sum(r.size for r in ready), round(oldest, 3), "data directory")
    state = spool.Spool(spool.root(spool_root), aid).state()
    if not state or not state.get("running"):
        return None
    try:
        updated = datetime.strptime(state["updated_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        b = state["backlog"]
        if time.time() - updated > STATE_FRESH:
            return None
        return Backlog(int(b["files"]), int(b["bytes"]), float(b["oldest_seconds"]), "wal-daemon")
    except (KeyError, ValueError, TypeError):
        return None
