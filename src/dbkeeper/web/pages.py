"""What each page shows, as plain values for its template: computed by the core modules over one snapshot.

A source's state is ``status.check``'s (the same words as ``dbkeeper status``), its retention plan is
``prune.plan``'s, the drill history is the drill log's rows; nothing is judged here a second time.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dbkeeper import drill_log, status
from dbkeeper.config import Config
from dbkeeper.errors import DbkeeperError, NotFound
from dbkeeper.pitr.archive import WalArchive
from dbkeeper.pitr.basebackup import Listed, list_backups
from dbkeeper.pitr.retain import BaseDecision, decide_backups
from dbkeeper.prune import PruneDecision, plan, policy_from
from dbkeeper.repo import Entry, catalog, names
from dbkeeper.repo.manifest import iso
from dbkeeper.units import format_duration, format_seconds, human_size
from dbkeeper.web import plots
from dbkeeper.web.snapshot import Snapshot, SnapshotRepository

PAGE_SIZE = 100  # backups per page of a series' table
PLOT_LIMIT = 2000  # the newest backups a plot draws (each is one mark)
TOP_TABLES = 5  # tables whose growth a source's page plots


@dataclass(frozen=True)
class View:
    """What every page needs besides its own values."""

    cfg: Config
    max_age: timedelta
    drill_log: str
    now: datetime


def ago(now: datetime, moment: datetime) -> str:
    return f"{format_duration(now - moment)} ago" if moment <= now else f"in {format_duration(moment - now)}"


def _check(repo: SnapshotRepository, view: View, source: str | None = None) -> status.StatusReport:
    """``dbkeeper status`` over the snapshot, its WAL archives included (for ``source`` only, when given)."""
    return status.check(
        repo,
        max_age=view.max_age,
        drill_log_path=view.drill_log,
        now=view.now,
        source=source,
        pitr=repo.snapshot.pitr.of(source),
        max_wal_age=view.cfg.pitr.max_wal_age or status.DEFAULT_MAX_WAL_AGE,
        max_base_age=view.cfg.pitr.max_base_age or status.DEFAULT_MAX_BASE_AGE,
    )


def overview(repo: SnapshotRepository, view: View) -> dict[str, Any]:
    report = _check(repo, view)
    counts = {entries[0].series_name: len(entries) for entries in repo.snapshot.catalog.series().values()}
    rows = []
    for db in report.databases:
        rows.append(
            {
                "status": db,
                "source_id": db.source_id,
                "count": counts.get(db.database, 0),
                "newest_ago": ago(view.now, db.newest.fresh_at) if db.newest else None,
                "newest_size": human_size(db.newest.size) if db.newest else None,
                "drill_ago": ago(view.now, db.last_drill.date) if db.last_drill else None,
            }
        )
    return {
        "report": report,
        "rows": rows,
        "pitr_rows": [_pitr_row(p, view) for p in report.pitr],
        "leftovers": report.leftover_line() if report.leftovers else None,
        "pitr_errors": report.pitr_error_lines(),
        "refused_drills": report.refused_drills_line() if report.refused_drills else None,
    }


def _pitr_row(p: status.PitrStatus, view: View) -> dict[str, Any]:
    """A WAL archive's line on the overview: the live RPO (how long ago the newest segment reached the store),
    the PITR window, the backlog and the last PITR drill, as ``status`` judges them."""
    h = p.health
    w = h.report.window
    return {
        "status": p,
        "source_id": h.source_id,
        "archive_id": h.archive_id,
        "rpo": format_duration(p.wal_age) if p.wal_age is not None else None,
        "newest": h.report.newest.name.text if h.report.newest else None,
        "window": None
        if w is None
        else {
            "start": iso(w.start),
            "end": iso(w.end),
            "length": format_duration(w.end - w.start),
            "backups": w.backups,
        },
        "no_window": h.no_window,
        "backlog": h.backlog.describe() if h.backlog else None,
        "drill_ago": ago(view.now, p.last_drill.date) if p.last_drill else None,
    }


@dataclass
class SeriesView:
    name: str  # as status and the drill log name it
    label: str
    status: status.DatabaseStatus | None
    entries: list[Entry]  # newest first, this page's only
    total: int
    good: int
    page: int
    pages: int
    size_svg: str
    duration_svg: str
    tables_svg: str
    plotted: int
    drills: list[drill_log.Row]
    plan: list[PruneDecision]
    plan_error: str | None = None
    kept: int = 0
    removed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def source_page(repo: SnapshotRepository, view: View, sid: str, page: int = 1) -> dict[str, Any]:
    snap = repo.snapshot
    mine = {k: v for k, v in snap.catalog.series().items() if k[0] == sid}
    if not mine:
        raise NotFound(f"the store holds no backups of source {sid}", "the overview lists the sources it holds")
    report = _check(repo, view, sid)
    states = {(d.source_id, d.database): d for d in report.databases}
    drills = drill_log.read(view.drill_log)
    policy = policy_from({}, view.cfg.retention)
    out = []
    for (_sid, label), entries in mine.items():
        name = entries[0].series_name
        out.append(_series(snap, view, sid, label, name, entries, states.get((sid, name)), drills, policy, page))
    return {"sid": sid, "series": out, "report": report, "policy": policy}


def _series(
    snap: Snapshot,
    view: View,
    sid: str,
    label: str,
    name: str,
    entries: list[Entry],
    state: status.DatabaseStatus | None,
    drills: list[drill_log.Row],
    policy: Any,
    page: int,
) -> SeriesView:
    good = [e for e in entries if e.good and e.manifest is not None]
    plotted = good[-PLOT_LIMIT:]
    pages = max(1, -(-len(entries) // PAGE_SIZE))
    page = min(max(page, 1), pages)
    newest_first = entries[::-1]
    decisions, (size_svg, duration_svg, tables_svg) = _drawn(snap, policy, sid, label, entries)
    plan_error = None
    if isinstance(decisions, str):
        plan_error, decisions = decisions, []
    return SeriesView(
        name=name,
        label=label,
        status=state,
        entries=newest_first[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        total=len(entries),
        good=len(good),
        page=page,
        pages=pages,
        size_svg=size_svg,
        duration_svg=duration_svg,
        tables_svg=tables_svg,
        plotted=len(plotted),
        drills=[r for r in drills if r.database == name][::-1],
        plan=decisions,
        plan_error=plan_error,
        kept=sum(d.keep for d in decisions),
        removed=sum(not d.keep for d in decisions),
    )


def warm(snap: Snapshot, cfg: Config) -> None:
    """Decide every series' retention plan and draw its plots for ``snap`` (on the thread that read it, before
    pages see it), so that no page request pays for them."""
    policy = policy_from({}, cfg.retention)
    for (sid, label), entries in snap.catalog.series().items():
        _drawn(snap, policy, sid, label, entries)


def _drawn(
    snap: Snapshot, policy: Any, sid: str, label: str, entries: list[Entry]
) -> tuple[list[PruneDecision] | str, tuple[str, str, str]]:
    """One series' retention plan (or why there is none) and plots: they change only with the snapshot, so they
    are made once per snapshot, not once per request."""
    key = ("drawn", sid, label)
    if key not in snap.memo:
        decisions: list[PruneDecision] | str
        try:
            decisions = plan(entries, policy, snap.taken)
        except DbkeeperError as exc:  # a policy the config cannot apply is shown on the page, not a 500
            decisions = exc.message
        good = [e for e in entries if e.good and e.manifest is not None]
        snap.memo[key] = (decisions, _plots(entries[0].series_name, good[-PLOT_LIMIT:]))
    drawn: tuple[list[PruneDecision] | str, tuple[str, str, str]] = snap.memo[key]
    return drawn


def _plots(name: str, plotted: list[Entry]) -> tuple[str, str, str]:
    """The source page's three SVG plots of one series: stored size, duration, rows of the biggest tables."""
    return (
        plots.scatter(
            [plots.Point(e.created, e.size, names.basename(e.name)) for e in plotted],
            lambda v: human_size(v),
            f"stored size of each good backup of {name}",
        ),
        plots.bars(
            [plots.Point(e.created, e.manifest.duration_s, names.basename(e.name)) for e in plotted if e.manifest],
            lambda v: format_seconds(v),
            f"how long each good backup of {name} took",
        ),
        plots.lines(_table_growth(plotted), lambda v: f"{v:,.0f}", f"rows of the biggest tables of {name}"),
    )


def _table_growth(good: list[Entry]) -> dict[str, list[plots.Point]]:
    """The row counts of the tables biggest in the newest backup, over every plotted backup that has them."""
    if not good or good[-1].manifest is None:
        return {}
    newest = good[-1].manifest.row_counts
    top = sorted(newest, key=lambda t: (-newest[t], t))[:TOP_TABLES]
    return {
        table: [
            plots.Point(e.created, e.manifest.row_counts[table], names.basename(e.name))
            for e in good
            if e.manifest is not None and table in e.manifest.row_counts
        ]
        for table in top
    }


@dataclass(frozen=True)
class BaseRow:
    """A base backup as the PITR page lists it, with retention's decision about it."""

    listed: Listed
    size: str
    wal: str  # first .. last segment of its WAL range
    decision: BaseDecision | None


def pitr_page(repo: SnapshotRepository, view: View, sid: str) -> dict[str, Any]:
    """One source's WAL archive (its newest cluster): the state status gives it, the window, each timeline's
    segments, its base backups with retention's plan for them, the PITR drills, and the commands that restore it
    to a time and drill it."""
    health = next(iter(repo.snapshot.pitr.of(sid).found), None)
    if health is None:
        raise NotFound(f"the store holds no WAL archive of source {sid}", "the overview lists the archives it holds")
    report = _check(repo, view, sid)
    state = next(p for p in report.pitr if p.health.source_id == sid)
    listed, plan = _bases(repo, view, sid, health.archive_id)
    rows = []
    for e in listed:
        b = e.backup
        wal = f"{b.start_segment} .. {b.stop_segment}" if b is not None else ""
        decision = plan.get(e.id) if isinstance(plan, dict) else None
        rows.append(BaseRow(e, human_size(sum(e.objects.values())), wal, decision))
    drills = drill_log.history(view.drill_log, repo.drill_records(sid).records)
    name = sid + status.PITR_DRILL_SUFFIX
    where = f"--source {shlex.quote(sid)} --store {shlex.quote(repo.url)}"
    w = health.report.window
    latest = w.latest() if w else None  # a minute before the end: the newest WAL may hold no later commit
    return {
        "sid": sid,
        "p": state,
        "row": _pitr_row(state, view),
        "report": health.report,
        "bases": rows[::-1],
        "plan_error": plan if isinstance(plan, str) else None,
        "drills": [r for r in drills if r.database == name][::-1],
        "commands": {
            "time": f"dbkeeper restore --pitr /var/lib/postgresql/restored --to-time"
            f" {iso(latest) if latest else 'YYYY-MM-DDTHH:MM:SSZ'} {where}",
            "latest": f"dbkeeper restore --pitr /var/lib/postgresql/restored --to-latest {where}",
            "drill": f"dbkeeper drill --pitr {where}",
            "verify": f"dbkeeper wal-verify {where}",
        },
    }


def _bases(
    repo: SnapshotRepository, view: View, sid: str, aid: str
) -> tuple[list[Listed], dict[str, BaseDecision] | str]:
    """The archive's base backups (oldest first) and prune's decisions about them (or why there are none): read
    once per snapshot."""
    snap = repo.snapshot
    key = ("bases", sid, aid)
    if key not in snap.memo:
        listed = list_backups(WalArchive(repo.store, sid, verify_key=repo.verify_key), aid, repo.verify_key)
        plan: dict[str, BaseDecision] | str
        try:
            policy = policy_from({}, view.cfg.retention)
            plan = {d.id: d for d in decide_backups(listed, policy, snap.taken)} if listed else {}
        except DbkeeperError as exc:
            plan = exc.message
        snap.memo[key] = (listed, plan)
    found: tuple[list[Listed], dict[str, BaseDecision] | str] = snap.memo[key]
    return found


def backup_page(repo: SnapshotRepository, view: View, name: str) -> dict[str, Any]:
    parsed = names.parse(name)
    entry = None
    if parsed is not None:
        sid = parsed.source_id or parsed.label
        entry = next((e for e in repo.snapshot.catalog.select(source=sid) if e.name == name), None)
    if entry is None:
        raise NotFound(f"the store holds no backup {name}", "its source's page lists the backups it holds")
    doc = entry.manifest
    rows = sorted((doc.row_counts if doc else {}).items(), key=lambda kv: (-kv[1], kv[0]))
    checks = _catalog_checks(entry, repo)
    store = repo.url
    where = f" --store {shlex.quote(store)}"
    commands = {
        "verify": f"dbkeeper verify {shlex.quote(name)}{where}",
        "restore": f"dbkeeper restore {shlex.quote(name)} {shlex.quote(_restore_target(entry))}{where}",
    }
    return {
        "entry": entry,
        "doc": doc,
        "manifest_json": doc.to_json().decode() if doc else None,
        "rows": rows,
        "total_rows": sum(n for _t, n in rows),
        "checks": checks,
        "commands": commands,
        "sid": entry.source_id,
        "size": human_size(entry.size),
        "created_ago": ago(view.now, entry.created),
    }


def _restore_target(entry: Entry) -> str:
    db = entry.database
    if entry.manifest is not None and entry.manifest.engine == "sqlite":
        return f"sqlite:///{db}_restored.db"
    return f"postgresql://USER@HOST:5432/{db}_restored"


def _catalog_checks(entry: Entry, repo: SnapshotRepository) -> list[tuple[str, bool | None, str]]:
    """What the catalog checked when it read the store (name, passed or None for not checked, detail)."""
    if entry.status == catalog.INCOMPLETE:
        return [("complete", False, entry.problem or "no manifest")]
    readable = entry.manifest is not None
    out: list[tuple[str, bool | None, str]] = [
        ("manifest", readable, "fits the schema and names this file" if readable else entry.problem or "unreadable"),
    ]
    if entry.status == catalog.BROKEN and readable:
        out.append(("set", False, entry.problem or "broken"))
    elif readable:
        out.append(("size", True, f"{entry.size} bytes, as the manifest says"))
        out.append(("sidecar", True, ".sha256 present"))
    if repo.verify_key is None:
        out.append(("signature", None, "not checked: no verify key" + (" (signed)" if entry.signed else "")))
    elif entry.status != catalog.BROKEN or entry.problem not in (catalog.UNSIGNED, catalog.BAD_SIGNATURE):
        out.append(("signature", True if readable else None, "verifies with the verify key"))
    if entry.status == catalog.FUTURE:
        out.append(("date", False, entry.problem or "dated in the future"))
    out.append(("content", None, "checksum, decompression and row counts: `dbkeeper verify`, or Verify now"))
    return out
