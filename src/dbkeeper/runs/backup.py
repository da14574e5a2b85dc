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
- A whole server (``--all``, ``all = true``) becomes one source per connectable non-template database (less the
  ``--exclude-db`` shell patterns), each with the id a URL of that database would get, so its history is the same
  as if it had been named alone; plus the server's roles and tablespaces (by default), kept under the id of the
  database they were read through.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dbkeeper.config import Config
from dbkeeper.engines import (
    DumpSelection,
    engine_for,
    is_sqlite,
    pg_url,
    redact,
    server_connection,
    server_databases,
    server_url,
    source_key,
)
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
    """One source to back up: ``label`` for people, ``url`` to reach it, ``name`` its id when one was given,
    ``selection`` the part of it (None: whole). ``whole_server``: ``url`` is a server whose every database is a
    source (``exclude_db`` left out, ``globals`` its roles and tablespaces too)."""

    label: str
    url: str
    name: str | None = None
    selection: DumpSelection | None = None
    whole_server: bool = False
    exclude_db: tuple[str, ...] = ()
    globals: bool = False


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


@dataclass(frozen=True)
class Whole:
    """``--all``: every database of the servers named, less ``exclude_db``; ``globals`` their roles too."""

    exclude_db: tuple[str, ...] = ()
    globals: bool = True


def sources_from(
    names: Sequence[str],
    cfg: Config,
    *,
    pg: tuple[str | None, str | None, str | None, str | None] = (None, None, None, None),
    name: str | None = None,
    selection: DumpSelection | None = None,
    whole: Whole | None = None,
) -> tuple[Source, ...]:
    """What to back up, in the order the design gives: SOURCE arguments (URLs, libpq connection strings or config
    names), else the ``-h/-p/-U/-d`` flags, else the config's sources, else the ``PG*`` environment. ``name``
    (``--name``) names a single source given on the command line; ``selection`` (``--table`` …) applies to the
    sources given on the command line; ``whole`` (``--all``) makes each of them a whole server."""
    host, port, user, dbname = pg
    out: list[Source]
    if whole is not None and name:
        raise UsageError("--name names one source, and --all backs up every database", "leave out --name")
    if names:
        out = []
        for spec in names:
            named = cfg.source(spec)
            if named:
                out.append(_configured(named, whole))
            else:
                out.append(_given(redact(pg_url(spec)), pg_url(spec), name, selection, whole))
    elif dbname or host or user or port:
        label = dbname or (f"{host or 'localhost'}:{port or 5432}" if whole else "")
        out = [_given(label, server_url(host, port, user, dbname, server=whole is not None), name, selection, whole)]
    elif cfg.sources:
        out = [_configured(s, whole) for s in cfg.sources]
    elif os.environ.get("PGDATABASE") or (whole is not None and os.environ.get("PGHOST")):
        url = server_url(None, None, None, None, server=whole is not None)
        out = [_given(os.environ.get("PGDATABASE") or os.environ["PGHOST"], url, name, selection, whole)]
    else:
        raise UsageError(
            "nothing to back up",
            "name a SOURCE (postgresql://user@host/db or sqlite:///app.db), use -d DB, or add [[sources]] to the"
            " config",
        )
    if name and len(out) > 1:
        raise UsageError("--name names one source, and this run has several", "give each a name in [[sources]]")
    return tuple(out)


def _given(label: str, url: str, name: str | None, selection: DumpSelection | None, whole: Whole | None) -> Source:
    if whole is None:
        return Source(label, url, name, selection or None)
    return Source(label, url, None, selection or None, True, whole.exclude_db, whole.globals)


def _configured(src: Any, whole: Whole | None) -> Source:
    """A config entry as a Source; ``--all`` on the command line makes it a whole server too."""
    selection = DumpSelection(
        src.tables, src.exclude_tables, src.schemas, src.exclude_schemas, src.exclude_table_data, src.pg_dump_options
    )
    everything = src.all or whole is not None
    if not everything:
        return Source(src.label, pg_url(src.url), src.name, selection or None)
    exclude = src.exclude_db + (whole.exclude_db if whole else ())
    keep_globals = src.globals if src.globals is not None else (whole.globals if whole else True)
    return Source(src.label, pg_url(src.url), None, selection or None, True, exclude, keep_globals)


def expand(sources: Sequence[Source], pg_bin: str | None) -> list[tuple[Source, bool]]:
    """The jobs of a run, (source, its roles and tablespaces rather than the database): a whole server listed
    into its databases, in name order."""
    jobs: list[tuple[Source, bool]] = []
    for src in sources:
        if not src.whole_server:
            jobs.append((src, False))
            continue
        listed = server_databases(src.url, pg_bin=pg_bin)
        kept = [(db, url) for db, url in listed if not any(fnmatch.fnmatchcase(db, p) for p in src.exclude_db)]
        if not kept:
            raise UsageError(
                f"no database of {src.label} is left to back up ({len(listed)} listed, all excluded)",
                "check the --exclude-db patterns (shell patterns: test_*, *_old)",
            )
        jobs += [(Source(redact(url), url, None, src.selection), False) for _, url in kept]
        if src.globals:
            jobs.append((Source(src.label, server_connection(src.url)), True))
    return jobs


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
        raise UsageError(f"--parallel-sources must be at least 1, not {plan.jobs}")
    if plan.policy is not None:
        plan.policy.check()  # a policy that cannot decide fails before any backup is made
    jobs = expand(plan.sources, plan.pg_bin)
    if plan.globals:
        jobs += [(src, True) for src in plan.sources if not is_sqlite(src.url) and not src.whole_server]
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
            selection=None if globals_only else src.selection,
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
