"""The PITR window: the times a restore can reach, from the end of the oldest good base backup to the newest WAL
segment the store holds (by the store's own clock, so that a forged timestamp cannot stretch it).

One rule for everyone who names a window: drills pick their target inside ``window(archive)``; ``status``, the
metrics and the dashboard show ``walverify``'s report, which computes its window with ``span`` over the same
good base backups and the same archived files. A ``.partial`` segment does not extend it: recovery never reads
one by itself."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the rule itself needs neither: a drill reads DEFAULT_MARGIN without loading the archive code
    from dbkeeper.pitr.archive import ArchivedWal, WalArchive
    from dbkeeper.pitr.basebackup import BaseBackup

DEFAULT_MARGIN = timedelta(seconds=60)  # at least archive_timeout plus the ledger's interval, for most setups


@dataclass(frozen=True)
class Window:
    archive_id: str
    start: datetime  # the oldest good base backup is consistent from here (span: the first whole second)
    end: datetime  # the newest archived segment reached the store here
    backups: int  # good base backups

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0)

    def pick(self, margin: timedelta, rng: random.Random) -> datetime | None:
        """A random whole second inside the window, at least ``margin`` before its end; None when there is none.

        Recovery targets are named to the second. Rounding a random instant down could name a second before the
        oldest backup is consistent (it ended 0.7 s into that second), and the restore would then fail for a
        reason the archive does not have; so the first candidate is the start rounded up."""
        first, last = _second_up(self.start), self.latest(margin)
        if last is None:
            return None
        return first + timedelta(seconds=rng.randint(0, int((last - first).total_seconds())))

    def latest(self, margin: timedelta = DEFAULT_MARGIN) -> datetime | None:
        """The latest whole second at least ``margin`` before the end, in the window; None when there is none.
        The newest archived WAL may hold no commit after a later target, and recovery would then end before
        reaching it (PostgreSQL refuses that): what the dashboard suggests restoring to."""
        last = self.end - margin
        last = last.replace(microsecond=0)  # down: still at least margin before the end
        return last if last >= _second_up(self.start) else None


def span(archive_id: str, stops: list[datetime], files: Iterable[ArchivedWal]) -> Window | None:
    """The window of one archive: ``stops`` are its good base backups' end times; None when there is none, or
    no segment reached the store after the oldest of them."""
    if not stops:
        return None
    start = _second_up(min(stops))  # shown and named to the second: the first one a restore can reach
    stored = [f.stored for f in files if f.name.kind == "segment" and f.stored is not None]
    end = max(stored, default=None)
    return Window(archive_id, start, end, len(stops)) if end is not None and end > start else None


def _second_up(moment: datetime) -> datetime:
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


def window(archive: WalArchive) -> Window | None:
    """The window of the newest archive (cluster) that has one; None when none has."""
    from dbkeeper.pitr.basebackup import list_backups

    by_archive: dict[str, list[BaseBackup]] = {}
    for e in list_backups(archive, None, archive.verify_key):
        if e.good and e.backup is not None:
            by_archive.setdefault(e.archive_id, []).append(e.backup)
    newest_first = sorted(by_archive, key=lambda a: max(b.stop_time for b in by_archive[a]), reverse=True)
    for aid in newest_first:
        found = span(aid, [b.stop_time for b in by_archive[aid]], archive.files(aid))
        if found is not None:
            return found
    return None
