"""Is the WAL archive whole? Contiguity per timeline, the history chain, duplicates: what ``wal-verify`` prints
and what ``status`` and the metrics count (one module for both).

The range that must be whole starts at the oldest base backup's start segment (a restore can start nowhere
earlier), or at the archive's first segment when there is no base backup, and runs on each timeline to its
newest archived segment, or to the server's current segment when the server is known. Each timeline after the
first starts at its switch point (its history file's last line), so a timeline's range never reaches back
before it existed. A segment missing from that range is, as WAL-G classifies them:

- DELAYED: not archived yet but on its way: still ``.ready`` on the server, after the newest archived segment of
  its timeline (the archiver is behind, or the daemon pushes out of order), or missing just before segments the
  store received less than ``delay`` ago (parallel uploads land out of order);
- LOST: a hole before newer archived segments that nothing says is coming. A restore through it stops there.

Also a problem: the same file archived twice with different contents (a race without conditional writes, or two
clusters on one source), a timeline without its history file, a history file whose parent timeline or whose own
history disagrees with its parent's, and (with the server known) a timeline in the archive newer than the
server's (another cluster promoted and archived here: split brain).

``deep`` re-reads every object through ``WalArchive.read``: decryption, decompression, hash, signature, header.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dbkeeper.errors import DbkeeperError, NotFound
from dbkeeper.pitr import walfile
from dbkeeper.pitr.archive import ArchivedWal, ArchiveInfo, WalArchive
from dbkeeper.pitr.basebackup import list_backups
from dbkeeper.pitr.window import Window, span

FOUND, DELAYED, LOST = "FOUND", "DELAYED", "LOST"
DEFAULT_DELAY = timedelta(minutes=1)


@dataclass(frozen=True)
class BaseStart:
    """What verification needs of a base backup: where its WAL starts and when it became consistent."""

    id: str
    timeline: int
    start_segno: int
    stop_time: datetime | None


@dataclass(frozen=True)
class Server:
    """What the running server says, when it is known: its timeline, current segment and ``.ready`` files."""

    timeline: int
    current_segno: int
    ready: frozenset[str] = frozenset()


@dataclass
class TimelineRange:
    timeline: int
    first: str
    last: str
    found: int
    delayed: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


@dataclass
class ArchiveReport:
    info: ArchiveInfo
    start: str | None  # the first segment that must be there
    start_from: str  # "base backup <id>" | "first archived segment" | "empty"
    timelines: list[TimelineRange] = field(default_factory=list)
    highest_timeline: int = 0
    conflicts: list[str] = field(default_factory=list)  # files archived with different contents
    history_problems: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # --deep: objects that do not read back
    newest: ArchivedWal | None = None  # the newest archived segment (or .partial)
    base_backups: list[BaseStart] = field(default_factory=list)
    window: Window | None = None  # pitr.window's rule over these base backups and files
    deep: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def lost(self) -> list[str]:
        return [name for t in self.timelines for name in t.lost]

    @property
    def delayed(self) -> list[str]:
        return [name for t in self.timelines for name in t.delayed]

    @property
    def problems(self) -> list[str]:
        out = []
        if self.lost:
            out.append(f"{len(self.lost)} segment(s) LOST, first {self.lost[0]}")
        out += [f"{name} archived with different contents" for name in self.conflicts]
        out += self.history_problems
        out += [f"{what} does not read back" for what in self.damaged]
        return out

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        start, end = (self.window.start, self.window.end) if self.window else (None, None)
        return {
            "archive_id": self.info.archive_id,
            "ok": self.ok,
            "problems": self.problems,
            "start": self.start,
            "start_from": self.start_from,
            "highest_timeline": self.highest_timeline,
            "newest": None
            if self.newest is None
            else {"file": self.newest.name.text, "stored_at": _iso(self.newest.stored)},
            "window": {"start": _iso(start), "end": _iso(end)},
            "timelines": [
                {
                    "timeline": t.timeline,
                    "first": t.first,
                    "last": t.last,
                    "found": t.found,
                    "delayed": t.delayed,
                    "lost": t.lost,
                }
                for t in self.timelines
            ],
            "lost": self.lost,
            "delayed": self.delayed,
            "conflicts": self.conflicts,
            "history_problems": self.history_problems,
            "deep": self.deep,
            "damaged": self.damaged,
            "notes": self.notes,
        }


def base_backups(archive: WalArchive, aid: str, seg_size: int) -> list[BaseStart]:
    """The good base backups of the archive (as pitr.basebackup lists them: backup.json read, checked and, with a
    verify key, signed), oldest start first: only those a restore can start from say where the WAL must begin."""
    out = [
        BaseStart(e.id, e.backup.timeline, walfile.lsn_segno(e.backup.start_lsn, seg_size), e.backup.stop_time)
        for e in list_backups(archive, aid, archive.verify_key)
        if e.good and e.backup is not None
    ]
    return sorted(out, key=lambda b: (b.start_segno, b.id))


def verify(
    archive: WalArchive,
    aid: str,
    *,
    now: datetime,
    server: Server | None = None,
    deep: bool = False,
    delay: timedelta = DEFAULT_DELAY,
    read_history: bool = True,
) -> ArchiveReport:
    """The report for one archive id (see the module's docstring)."""
    info = archive.info(aid)
    if info is None:
        raise NotFound(f"no archive {aid} under source {archive.source_id}")
    seg = info.seg_size
    files = archive.files(aid)
    bases = base_backups(archive, aid, seg)
    stops = [b.stop_time for b in bases if b.stop_time is not None]
    report = ArchiveReport(info, None, "empty", base_backups=bases, window=span(aid, stops, files), deep=deep)
    # Duplicates: one name, more than one hash.
    hashes: dict[str, set[str]] = {}
    for entry in files:
        hashes.setdefault(entry.name.text, set()).add(entry.sha256)
    report.conflicts = sorted(name for name, h in hashes.items() if len(h) > 1)
    segments: dict[int, dict[int, ArchivedWal]] = {}
    for entry in files:
        if entry.name.kind in ("segment", "partial"):
            if entry.name.kind == "segment":
                segments.setdefault(entry.name.timeline, {})[entry.name.segno(seg)] = entry
            if report.newest is None or entry.name.order > report.newest.name.order:
                report.newest = entry
    histories = {e.name.timeline for e in files if e.name.kind == "history"}
    timelines = set(segments) | histories
    report.highest_timeline = max(timelines, default=0)
    switch = _history_chain(archive, aid, report, histories, timelines, read_history)
    if bases:
        start_segno = bases[0].start_segno
        report.start_from = f"base backup {bases[0].id}"
        start_tli = bases[0].timeline
    elif segments:
        start_tli = min(segments)
        start_segno = min(segments[start_tli])
        report.start_from = "first archived segment"
    else:
        report.notes.append("the archive holds no segment yet")
        _deep(archive, aid, files, report, deep)
        return report
    report.start = walfile.segment_name(start_tli, start_segno, seg)
    if server is not None and report.highest_timeline > server.timeline:
        report.history_problems.append(
            f"the archive holds timeline {report.highest_timeline}, newer than the server's {server.timeline}:"
            " another cluster promoted and archived into this source"
        )
    fresh = now - delay
    for tli in sorted(timelines):
        have = segments.get(tli, {})
        begin = max(start_segno, switch.get(tli, 0))
        end = max(have, default=-1)
        if server is not None and tli == server.timeline:
            end = max(end, server.current_segno - 1)  # the current segment is still being written
        if end < begin:
            continue
        newest_here = max(have, default=-1)
        rng = TimelineRange(tli, walfile.segment_name(tli, begin, seg), walfile.segment_name(tli, end, seg), 0)
        for segno in range(begin, end + 1):
            if segno in have:
                rng.found += 1
                continue
            name = walfile.segment_name(tli, segno, seg)
            later = [e for s, e in have.items() if s > segno]
            arriving = any(e.stored is not None and e.stored >= fresh for e in later)
            if segno > newest_here or (server is not None and name in server.ready) or arriving:
                rng.delayed.append(name)
            else:
                rng.lost.append(name)
        report.timelines.append(rng)
    _deep(archive, aid, files, report, deep)
    return report


def _history_chain(
    archive: WalArchive,
    aid: str,
    report: ArchiveReport,
    histories: set[int],
    timelines: set[int],
    read_history: bool,
) -> dict[int, int]:
    """Check each timeline's history file against its parent's; return each timeline's switch segment."""
    switch: dict[int, int] = {}
    for tli in sorted(t for t in timelines if t > 1 and t not in histories):
        report.history_problems.append(f"timeline {tli} has segments but no {tli:08X}.history file")
    if not histories:
        return switch
    if not read_history:
        report.notes.append("history files not read (encrypted, and no identity given)")
        return switch
    try:
        contents = archive.history(aid)
    except DbkeeperError as exc:
        report.history_problems.append(f"a history file does not read back: {exc.message}")
        return switch
    seg = report.info.seg_size
    parsed = {tli: walfile.history_entries(data) for tli, data in contents.items()}
    for tli, entries in sorted(parsed.items()):
        name = f"{tli:08X}.history"
        if not entries:
            report.history_problems.append(f"{name} names no parent timeline")
            continue
        parent, lsn = entries[-1]
        switch[tli] = walfile.lsn_segno(lsn, seg)
        if parent >= tli:
            report.history_problems.append(f"{name} names parent timeline {parent}, not an older one")
        elif parent > 1 and parent not in parsed:
            report.history_problems.append(f"{name}: its parent timeline {parent} has no history file")
        elif parent > 1 and parsed[parent] != entries[:-1]:
            report.history_problems.append(f"{name} does not continue {parent:08X}.history")
        lsns = [at for _p, at in entries]
        if lsns != sorted(lsns):
            report.history_problems.append(f"{name}: switch points go backwards")
    return switch


def _deep(archive: WalArchive, aid: str, files: Iterable[ArchivedWal], report: ArchiveReport, deep: bool) -> None:
    if not deep:
        return
    for entry in files:
        try:
            archive.read(aid, entry)
        except DbkeeperError as exc:
            report.damaged.append(f"{entry.name.text} ({exc.message})")


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None
