"""The PITR window: the times a restore can reach, from the end of the oldest good base backup to the newest WAL
the store holds (by the store's own clock, so that a forged timestamp cannot stretch it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dbkeeper.pitr.archive import WalArchive
from dbkeeper.pitr.basebackup import BaseBackup, list_backups


@dataclass(frozen=True)
class Window:
    archive_id: str
    start: datetime  # the oldest good base backup is consistent from here
    end: datetime  # the newest archived segment reached the store here
    backups: int  # good base backups

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0)


def window(archive: WalArchive) -> Window | None:
    """The window of the newest archive (cluster) with a good base backup; None when there is none, or no WAL
    after it."""
    by_archive: dict[str, list[BaseBackup]] = {}
    for e in list_backups(archive, None, archive.verify_key):
        if e.good and e.backup is not None:
            by_archive.setdefault(e.archive_id, []).append(e.backup)
    newest_first = sorted(by_archive, key=lambda a: max(b.stop_time for b in by_archive[a]), reverse=True)
    for aid in newest_first:
        mine = by_archive[aid]
        start = min(b.stop_time for b in mine)
        stored = [o.stored for o in archive.files(aid) if o.name.kind == "segment" and o.stored is not None]
        if stored and max(stored) > start:
            return Window(aid, start, max(stored), len(mine))
    return None
