"""A backup run: every source under its lock, each committed as a new set of its own source id, then copied and
pruned; the run reported to the notifier and the metrics file.

- Sources run one after the other, or ``jobs`` at once (each dump is one client process and one server backend,
  mostly waiting on each other, so a few in flight keep both cores busy). Results keep the sources' order.
- Each source's id is its config name (or ``--name``), else derived from the source (repo.sources). A server's
  roles and tablespaces (``globals``) are kept under the same source id as its database, with a lock of their own.
- After a source's backup is committed: ``copy_to`` copies it to other stores, then ``policy`` verifies it and
  prunes its series. A failed copy skips the prune: a run that already failed deletes nothing.
- With a single source (and no globals) its failure is raised; with several, each failure is reported in its
  result and the others still run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dbkeeper.config import Config
from dbkeeper.engines import engine_for, is_sqlite, redact, source_key
from dbkeeper.errors import DbkeeperError, UsageError
from dbkeeper.lock import SourceLock
from dbkeeper.notify import Run
from dbkeeper.pipeline import BackupOptions, run_backup
from dbkeeper.progress import Progress
from dbkeeper.repo import Repository
from dbkeeper.repo.manifest import Manifest
from dbkeeper.repo.sources import source_id
from dbkeeper.retention import Policy


@dataclass(frozen=True)
class Source:
    """One source to back up: ``label`` for people, ``url`` to reach it, ``name`` its id when one was given."""

    label: str
    url: str
    name: str | None = None


@dataclass(frozen=True)
class BackupPlan:
    sources: tuple[Source, ...]
    options: BackupOptions
    dump_format: str = "plain"
    pg_bin: str | None = None
    globals: bool = False
    jobs: int = 1
    copy_to: tuple[Repository, ...] = ()
    policy: Policy | None = None
    identities: list[Any] | None = None


@dataclass
class SourceResult:
    label: str
    ok: bool
    source_id: str | None = None
    manifest: Manifest | None = None
    location: str | None = None
    error: DbkeeperError | None = None
    copies: Any = None  # copy.CopyResult, or the error that stopped the copy
    prune: Any = None  # prune.PruneResult, or the error that stopped the prune
    prune_skipped: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"source": self.label, "ok": self.ok}
        if self.error is not None and self.manifest is None:
            return {**doc, "error": self.error.message, "hint": self.error.hint}
        doc.update(source_id=self.source_id, name=self.manifest.name if self.manifest else None, location=self.location)
        doc["manifest"] = self.manifest.__dict__ if self.manifest else None
        if self.copies is not None:
            doc["copies"] = (
                [{"ok": False, "error": self.copies.message, "hint": self.copies.hint}]
                if isinstance(self.copies, DbkeeperError)
                else self.copies.to_json()["copies"]
            )
        if self.prune_skipped:
            doc["prune"] = {"ok": False, "skipped": self.prune_skipped}
        elif isinstance(self.prune, DbkeeperError):
            doc["prune"] = {"ok": False, "error": self.prune.message, "hint": self.prune.hint}
        elif self.prune is not None:
            doc["prune"] = self.prune.to_json()
        return doc


def sources_from(
    names: Sequence[str],
    cfg: Config,
    *,
    pg: tuple[str | None, str | None, str | None, str | None] = (None, None, None, None),
    name: str | None = None,
) -> tuple[Source, ...]:
    """What to back up, in the order the design gives: SOURCE arguments (URLs or config names), else the
    ``-h/-p/-U/-d`` flags, else the config's sources, else the ``PG*`` environment. ``name`` (``--name``) names a
    single source given on the command line."""
    host, port, user, dbname = pg
    out: list[Source]
    if names:
        out = []
        for spec in names:
            named = cfg.source(spec)
            out.append(Source(spec, named.url, named.name) if named else Source(redact(spec), spec, name))
    elif dbname or host or user or port:
        out = [Source(dbname or "", pg_url(host, port, user, dbname), name)]
    elif cfg.sources:
        out = [Source(s.label, s.url, s.name) for s in cfg.sources]
    elif os.environ.get("PGDATABASE"):
        out = [Source(os.environ["PGDATABASE"], pg_url(None, None, None, os.environ["PGDATABASE"]), name)]
    else:
        raise UsageError(
            "nothing to back up",
            "name a SOURCE (postgresql://user@host/db or sqlite:///app.db), use -d DB, or add [[sources]] to the"
            " config",
        )
    if name and len(out) > 1:
        raise UsageError("--name names one source, and this run has several", "give each a name in [[sources]]")
    return tuple(out)


def pg_url(host: str | None, port: str | None, user: str | None, db: str | None) -> str:
    db = db or os.environ.get("PGDATABASE")
    if not db:
        raise UsageError("no database named", "pass -d DBNAME or set PGDATABASE")
    auth = f"{user}@" if user else ""
    return f"postgresql://{auth}{host or ''}{':' + str(port) if port else ''}/{db}"


Progress_for = Callable[[str], Progress | None]


def back_up(
    plan: BackupPlan,
    repo: Repository,
    report: Run,
    *,
    progress_for: Progress_for = lambda label: None,
    on_result: Callable[[SourceResult], None] = lambda result: None,
) -> list[SourceResult]:
    """Run the plan; each source's result goes to ``on_result`` as soon as it is known (the CLI prints it)."""
    if plan.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {plan.jobs}")
    if plan.policy is not None:
        plan.policy.check()  # a policy that cannot decide fails before any backup is made
    jobs = [(src, False) for src in plan.sources]
    if plan.globals:
        jobs += [(src, True) for src in plan.sources if not is_sqlite(src.url)]
    single = len(jobs) == 1

    def one(job: tuple[Source, bool]) -> SourceResult:
        src, globals_only = job
        label = f"{src.label} (roles and tablespaces)" if globals_only else src.label
        result = _one(plan, repo, src, label, globals_only, progress_for(label), report, single)
        on_result(result)
        return result

    if plan.jobs > 1 and len(jobs) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=plan.jobs, thread_name_prefix="dbkeeper-backup") as pool:
            results = list(pool.map(one, jobs))
    else:
        results = [one(job) for job in jobs]
    done = [r.label for r in results if r.ok]
    report.summary = f"{len(done)} of {len(results)} backed up" + (f" ({', '.join(done)})" if done else "")
    return results


def _one(
    plan: BackupPlan,
    repo: Repository,
    src: Source,
    label: str,
    globals_only: bool,
    progress: Progress | None,
    report: Run,
    single: bool,
) -> SourceResult:
    result = SourceResult(label, ok=False)
    try:
        engine = engine_for(
            src.url,
            pg_bin=plan.pg_bin,
            globals_only=globals_only,
            dump_format="plain" if globals_only else plan.dump_format,
        )
        # The id comes from the database's own key, so its roles and tablespaces are kept beside it.
        result.source_id = source_id(source_key(src.url), src.name)
        with SourceLock(engine.key(), label):
            doc = run_backup(engine, repo, result.source_id, plan.options, progress=progress)
    except DbkeeperError as exc:
        report.fail(exc.message, exc.hint, source=label)
        if single:
            raise
        result.error = exc
        return result
    result.ok, result.manifest = True, doc
    result.location = repo.describe(doc.name)
    report.details.setdefault("backups", []).append(
        {"source": label, "file": doc.name, "size_bytes": doc.size_bytes, "duration_s": doc.duration_s}
    )
    if not _after_backup(plan, repo, doc, result):
        report.fail(f"the copy or prune after backing up {label} failed", source=label)
    return result


def _after_backup(plan: BackupPlan, repo: Repository, doc: Manifest, result: SourceResult) -> bool:
    """``copy_to``, then the prune, for one committed set; False when either failed."""
    if not plan.copy_to and plan.policy is None:
        return True  # the plain backup does not pay for importing copy and prune
    from dbkeeper.copy import copy_backup
    from dbkeeper.prune import prune_after_backup

    name = doc.name
    ok = True
    if plan.copy_to:
        try:
            result.copies = copy_backup(repo, name, plan.copy_to)
        except DbkeeperError as exc:
            result.copies = exc
            ok = False
        else:
            ok = not result.copies.failures
    if plan.policy is not None:
        if not ok:
            result.prune_skipped = "the copy failed, so nothing was pruned"
        else:
            try:
                result.prune = prune_after_backup(repo, name, plan.policy, identities=plan.identities)
            except DbkeeperError as exc:
                result.prune = exc
                ok = False
            else:
                ok = not result.prune.failures
    result.ok = ok
    return ok
