"""Retention for point-in-time recovery: which base backups the policy keeps, and which WAL they need.

Pure decisions first (``decide_backups``, ``decide_wal``: no store, no clock), then ``prune_pitr`` applies them.

- Base backups of one archive (one cluster and major) form one series; the policy (retention.apply_policy, the
  same rules as logical backups) counts the good ones (backup.json present and, with a verify key, signed) by
  their ``created_at``. Broken and incomplete ones are kept and never counted, as everywhere. An incremental
  backup that is kept keeps its parent full backup ("parent of …").
- WAL (rule 8 of PITR.md): every segment from the oldest kept base backup's start segment on, on that backup's
  timeline and every timeline descending from it, is kept; so is every history file, always. A segment is
  removed only when no kept base backup could replay it: before the start segment of every kept backup on its
  timeline's ancestry. An archive without a kept good base backup loses no WAL (nothing could say what is
  needed).
- Deletion order: backup.json first (the backup then reads as incomplete, never as good with missing data), its
  signature, then its objects; WAL after the backups.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dbkeeper.errors import DbkeeperError
from dbkeeper.pitr import walfile
from dbkeeper.pitr.archive import ArchivedWal, WalArchive, sources
from dbkeeper.pitr.basebackup import JSON_NAME, SIG_NAME, BaseBackup, Listed, list_backups
from dbkeeper.retention import Candidate, Policy, apply_policy
from dbkeeper.signing import VerifyKey
from dbkeeper.storage import Store

ALWAYS_HISTORY = "history file: kept always"
NO_BACKUP = "no kept good base backup in this archive: no WAL is removed"


@dataclass
class BaseDecision:
    archive_id: str
    id: str
    keep: bool
    reasons: tuple[str, ...]
    status: str
    problem: str | None = None
    deleted: bool = False
    error: DbkeeperError | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "archive_id": self.archive_id,
            "id": self.id,
            "action": "keep" if self.keep else "remove",
            "reasons": list(self.reasons),
            "status": self.status,
            "problem": self.problem,
            "deleted": self.deleted,
            "error": self.error.message if self.error else None,
        }


@dataclass
class WalDecision:
    file: str
    object: str
    keep: bool
    reason: str
    deleted: bool = False
    error: DbkeeperError | None = None


@dataclass
class ArchivePrune:
    """One archive's decisions: its base backups (newest first) and its WAL files (in WAL order)."""

    source_id: str
    archive_id: str
    backups: list[BaseDecision] = field(default_factory=list)
    wal: list[WalDecision] = field(default_factory=list)

    @property
    def failures(self) -> list[BaseDecision | WalDecision]:
        found: list[BaseDecision | WalDecision] = [d for d in self.backups if d.error is not None]
        return found + [d for d in self.wal if d.error is not None]

    def wal_summary(self) -> list[str]:
        """Runs of consecutive WAL files with the same decision, one line each: what ``--dry-run`` explains."""
        lines: list[str] = []
        run: list[WalDecision] = []

        def flush() -> None:
            if run:
                first, last = run[0].file, run[-1].file
                span = first if first == last else f"{first} .. {last} ({len(run)} files)"
                lines.append(f"{'keep' if run[0].keep else 'remove'} WAL {span}: {run[0].reason}")

        for d in self.wal:
            if run and (run[-1].keep, run[-1].reason) != (d.keep, d.reason):
                flush()
                run = []
            run.append(d)
        flush()
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source_id,
            "archive_id": self.archive_id,
            "base_backups": [d.to_json() for d in self.backups],
            "wal_kept": sum(d.keep for d in self.wal),
            "wal_removed": sum(not d.keep for d in self.wal),
            "wal_deleted": sum(d.deleted for d in self.wal),
            "wal": self.wal_summary(),
        }


def decide_backups(entries: list[Listed], policy: Policy, now: datetime) -> list[BaseDecision]:
    """The policy over one archive's base backups, with incrementals keeping their parents."""
    # To the second, as prune's clock and a dump's manifest are: a backup written earlier in the same second as
    # this prune is not "dated in the future".
    dated = {e.id: (e.backup.created_at.replace(microsecond=0) if e.backup else _id_time(e.id)) for e in entries}
    candidates = [Candidate(e.id, dated[e.id], e.good) for e in entries]
    decisions = {d.key: d for d in apply_policy(candidates, policy, now)}
    by_id = {e.id: e for e in entries}
    out = {
        key: BaseDecision(by_id[key].archive_id, key, d.keep, d.reasons, by_id[key].status, by_id[key].problem)
        for key, d in decisions.items()
    }
    for e in entries:
        if out[e.id].keep and e.backup is not None and e.backup.parent in out:
            parent = out[e.backup.parent]
            if not parent.keep:
                parent.keep, parent.reasons = True, (f"parent of {e.id}",)
            elif f"parent of {e.id}" not in parent.reasons:
                parent.reasons = (*parent.reasons, f"parent of {e.id}")
    return sorted(out.values(), key=lambda d: d.id, reverse=True)


def _id_time(bid: str) -> datetime:
    from datetime import UTC

    return datetime.strptime(bid[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def descendants(history: dict[int, bytes], timeline: int) -> set[int]:
    """``timeline`` and every timeline whose history names it as an ancestor."""
    out = {timeline}
    for tli, data in history.items():
        if timeline in {parent for parent, _lsn in walfile.history_entries(data)}:
            out.add(tli)
    return out


def decide_wal(kept: list[BaseBackup], files: list[ArchivedWal], history: dict[int, bytes]) -> list[WalDecision]:
    """Keep what a kept base backup needs (see the module doc); every other segment, .partial and .backup goes."""
    needs = [(b, descendants(history, b.timeline)) for b in sorted(kept, key=lambda b: b.start_lsn)]
    out = []
    for f in files:
        if f.name.kind == "history":
            out.append(WalDecision(f.name.text, f.object, True, ALWAYS_HISTORY))
            continue
        if not needs:
            out.append(WalDecision(f.name.text, f.object, True, NO_BACKUP))
            continue
        reason = None
        for b, tlis in needs:
            if f.name.timeline in tlis and f.name.segno(b.wal_segment_size) >= b.start_segno:
                reason = f"needed by base backup {b.id} (from its start segment {b.start_segment})"
                break
        if reason is not None:
            out.append(WalDecision(f.name.text, f.object, True, reason))
            continue
        oldest = needs[0][0]
        if any(f.name.timeline in tlis for _b, tlis in needs):
            why = (
                f"before the start segment of every kept base backup (the oldest, {oldest.id}, starts at"
                f" {oldest.start_segment})"
            )
        else:
            why = f"timeline {f.name.timeline} leads to no kept base backup"
        out.append(WalDecision(f.name.text, f.object, False, why))
    return out


def prune_pitr(
    store: Store,
    policy: Policy,
    now: datetime,
    *,
    source: str | None = None,
    verify_key: VerifyKey | None = None,
    dry_run: bool = False,
) -> list[ArchivePrune]:
    """Decide for every archive of every source (or of ``source``) and delete what is removed. On a DryRunStore
    the deletions are recorded, nothing changes."""
    out = []
    for sid in [source] if source else sources(store):
        archive = WalArchive(store, sid, verify_key=verify_key)
        listed = list_backups(archive, None, verify_key)
        aids = sorted({a.archive_id for a in archive.ids()} | {e.archive_id for e in listed})
        for aid in aids:
            result = ArchivePrune(sid, aid)
            entries = [e for e in listed if e.archive_id == aid]
            result.backups = decide_backups(entries, policy, now) if entries else []
            kept_ids = {d.id for d in result.backups if d.keep}
            kept = [e.backup for e in entries if e.id in kept_ids and e.good and e.backup is not None]
            result.wal = decide_wal(kept, archive.files(aid), archive.history(aid))
            by_id = {e.id: e for e in entries}
            for d in result.backups:
                if not d.keep:
                    _delete_backup(store, by_id[d.id], d, dry_run)
            for w in result.wal:
                if not w.keep:
                    _delete_wal(store, w, dry_run)
            out.append(result)
    return out


def _delete_backup(store: Store, entry: Listed, decision: BaseDecision, dry_run: bool) -> None:
    names = [JSON_NAME, SIG_NAME, *sorted(n for n in entry.objects if n not in (JSON_NAME, SIG_NAME))]
    try:
        for name in names:
            if name in entry.objects:
                store.delete(entry.prefix + name)
    except DbkeeperError as exc:
        decision.error = exc
    else:
        decision.deleted = not dry_run


def _delete_wal(store: Store, decision: WalDecision, dry_run: bool) -> None:
    try:
        store.delete(decision.object)
        with contextlib.suppress(DbkeeperError):
            store.delete(decision.object + ".sig")
    except DbkeeperError as exc:
        decision.error = exc
    else:
        decision.deleted = not dry_run
