"""How each source's WAL archive is doing right now: what ``status`` judges and the metrics export.

For the newest archive (cluster) of each source under ``pitr/``: the wal-verify report (pitr.walverify: gaps,
duplicates, history; names only, nothing read back), the time the store received the newest archived segment
(the live RPO: how much would be lost if the server died now), the PITR window, and the ``.ready`` backlog, read
from the data directory when it is here and readable, else from the WAL daemon's state in its spool (written
every second while it runs), else unknown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dbkeeper.pitr import datadir, spool
from dbkeeper.pitr.archive import ROOT, WalArchive
from dbkeeper.pitr.walverify import DEFAULT_DELAY, ArchiveReport, verify
from dbkeeper.storage import Store

STATE_FRESH = 30.0  # seconds: a daemon state older than this is not a backlog reading


@dataclass(frozen=True)
class Backlog:
    files: int
    bytes: int
    oldest_seconds: float
    origin: str  # "data directory" | "wal-daemon"

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


def sources(store: Store) -> list[str]:
    """The sources that have a WAL archive in the store."""
    found = set()
    for info in store.list(f"{ROOT}/"):
        parts = info.name.split("/")
        if len(parts) == 4 and parts[3] == "archive.json":
            found.add(parts[1])
    return sorted(found)


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
