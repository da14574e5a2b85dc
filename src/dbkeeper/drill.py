"""DR drills: the runbook's restore test, automated and logged.

For each database in the store: pick a random good backup younger than ``max_age`` (random, so that over many
drills every backup in the window gets restored, not only the newest), restore it with ``run_restore`` into a
new database ``<db>_drill_<UTC stamp>`` (verify first, row counts against the manifest, never anything but
that new database), run the smoke queries in it, time it, drop it, and append one row to the drill log.

The source database is never connected to: the drill restores into a throwaway cluster of its own, or into
``target``; never into a server a manifest names (whoever can write the store can write a manifest),
and the restore only creates, loads and renames databases of its own. The scratch database is dropped on every
path out, failure included, unless ``keep`` says otherwise; it is dropped only if this drill created it.

Each step is a named check, OK or FAILED with what was found. A drill fails when a check fails. Anomalies are
the failed checks plus warnings that do not fail it: a restore more than twice as slow as the previous passing
drill of the same database (and at least a second slower), and a newest backup close to ``max_age`` (the
backups may have stopped).
"""

from __future__ import annotations

import random
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbkeeper import drill_log, smoke
from dbkeeper.engines import Engine, RestoreOptions, sandbox_for, scratch_for
from dbkeeper.errors import DbkeeperError, NoSuchBackup
from dbkeeper.pitr.window import DEFAULT_MARGIN
from dbkeeper.progress import Progress
from dbkeeper.repo import Entry, Repository, drills
from dbkeeper.repo.manifest import Manifest, iso
from dbkeeper.repo.names import SOURCE_ID_RE, stamp
from dbkeeper.restore import default_jobs, restore_into
from dbkeeper.storage import Store
from dbkeeper.units import compact_duration, format_duration, format_seconds, human_size

if TYPE_CHECKING:
    from dbkeeper.signing import Signer

SLOW_FACTOR = 2.0  # a restore this many times slower than the previous drill's is an anomaly …
SLOW_MARGIN_S = 1.0  # … when it is also at least this much slower (sub-second restores jitter)
AGE_WARNING = 0.8  # the newest backup older than this share of max_age is an anomaly


@dataclass(frozen=True)
class DrillOptions:
    max_age: timedelta = timedelta(days=7)
    smoke: tuple[smoke.Statement, ...] = ()
    target: str | None = None
    keep: bool = False
    pg_bin: str | None = None
    identities: tuple[Any, ...] = ()
    signer: Signer | None = None  # signs each drill's record in the store (config [signing] key)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "hint": self.hint}


@dataclass
class DrillResult:
    database: str
    started: datetime
    backup: str | None = None
    backup_age: timedelta | None = None
    size_bytes: int | None = None
    target: str | None = None
    restore_seconds: float | None = None
    total_seconds: float = 0.0
    rows: int | None = None
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kept: bool = False
    pitr: dict[str, Any] | None = None  # a point-in-time drill's target, point reached, replay rate

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def anomalies(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok] + self.warnings

    def add(self, name: str, ok: bool, detail: str, hint: str | None = None) -> bool:
        self.checks.append(Check(name, ok, detail, hint))
        return ok

    def log_row(self) -> drill_log.Row:
        passed = sum(c.ok for c in self.checks)
        return drill_log.Row(
            date=self.started,
            database=self.database,
            result=drill_log.PASS if self.ok else drill_log.FAIL,
            backup=self.backup or "",
            backup_age=format_duration(self.backup_age) if self.backup_age is not None else "",
            size=human_size(self.size_bytes) if self.size_bytes is not None else "",
            restore_seconds=self.restore_seconds,
            total_seconds=self.total_seconds,
            checks=f"{passed}/{len(self.checks)} OK",
            anomalies="; ".join(self.anomalies),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "ok": self.ok,
            "result": drill_log.PASS if self.ok else drill_log.FAIL,
            "started_at": iso(self.started),
            "backup": self.backup,
            "backup_age_seconds": int(self.backup_age.total_seconds()) if self.backup_age is not None else None,
            "size_bytes": self.size_bytes,
            "target": self.target,
            "kept": self.kept,
            "restore_seconds": _round(self.restore_seconds),
            "total_seconds": _round(self.total_seconds),
            "rows": self.rows,
            "checks": [c.to_json() for c in self.checks],
            "anomalies": self.anomalies,
            **({"pitr": self.pitr} if self.pitr is not None else {}),
        }


@dataclass
class DrillRun:
    store: str
    seed: int
    max_age: timedelta
    log: str
    drills: list[DrillResult]
    warnings: list[str] = field(default_factory=list)  # the run's own troubles, which fail no drill

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.drills)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "store": self.store,
            "seed": self.seed,
            "max_age": compact_duration(self.max_age),
            "log": self.log,
            "drills": [d.to_json() for d in self.drills],
            "warnings": self.warnings,
        }


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def run_drills(
    repo: Repository,
    options: DrillOptions,
    *,
    log: str | Path,
    source: str | None = None,
    database: str | None = None,
    seed: int | None = None,
    clock: Callable[[], datetime] = utcnow,
    progress_for: Callable[[str], Progress] | None = None,
) -> DrillRun:
    """Drill every series in the store (each database of each source; or those of ``source``/``database``),
    logging each drill as it finishes.

    ``seed`` makes the random choices repeatable; without one a seed is drawn and reported, so that any drill
    can be repeated exactly (given the same store).
    """
    now = clock()
    # A server's roles and tablespaces (backup --globals) are not a database to restore and query.
    series = [
        entries
        for entries in repo.scan(now, source=source, database=database).series().values()
        if not any(e.is_globals for e in entries)
    ]
    named = source or database
    if not series and not named:
        repo.require_store()
        raise NoSuchBackup(f"no backups in {repo.url}", "check --store, or run `dbkeeper backup` first")
    history = drill_log.history(log, repo.drill_records(source).records)
    seed = secrets.randbelow(2**32) if seed is None else seed
    rng = random.Random(seed)  # noqa: S311 - a repeatable choice, not a secret
    results = []
    problems: list[str] = []
    # A series asked for by name that has no backup at all is a failed drill, logged like any other.
    for entries in series or [[]]:
        name = entries[0].series_name if entries else str(named)
        previous = drill_log.last(history, name, passed=True)
        progress = progress_for(name) if progress_for else None
        result = drill_one(repo, name, entries, options, rng, previous, clock, progress)
        row = result.log_row()
        drill_log.append(log, row)
        results.append(result)
        problem = _record(repo.store, row, entries[0].source_id if entries else source or str(named), options.signer)
        if problem:
            problems.append(problem)
    return DrillRun(repo.url, seed, options.max_age, str(log), results, problems)


def _record(store: Store, row: drill_log.Row, source_id: str, signer: Signer | None) -> str | None:
    """Keep the drill in the store (signed with ``signer``) for every host's ``status``; what went wrong, if
    anything (a drill host with read-only access to the store still drills: the record is then only in its own
    log)."""
    if not SOURCE_ID_RE.match(source_id):
        return None  # a name that is no source id (a database asked for by name) has no directory to go in
    try:
        drills.put(store, drill_log.to_record(row, source_id, socket.gethostname()), signer)
    except DbkeeperError as exc:
        return (
            f"could not keep the drill of {row.database} in the store ({exc.message});"
            " it is in this host's drill log only"
        )
    return None


def drill_one(
    repo: Repository,
    database: str,
    entries: Sequence[Entry],
    options: DrillOptions,
    rng: random.Random,
    previous: drill_log.Row | None,
    clock: Callable[[], datetime] = utcnow,
    progress: Progress | None = None,
) -> DrillResult:
    t0 = time.monotonic()
    result = DrillResult(database, clock())
    try:
        chosen = _choose(result, entries, options.max_age, rng)
        if chosen is not None:
            _restore_and_check(result, repo, chosen, options, previous, progress)
    finally:
        result.total_seconds = time.monotonic() - t0
    return result


def _choose(result: DrillResult, entries: Sequence[Entry], max_age: timedelta, rng: random.Random) -> Entry | None:
    now = result.started
    good = [e for e in entries if e.good and e.manifest is not None]
    young = [e for e in good if now - e.fresh_at < max_age]
    limit = format_duration(max_age)
    if good and now - good[-1].fresh_at >= max_age * AGE_WARNING:
        result.warnings.append(
            f"the newest backup is {format_duration(now - good[-1].fresh_at)} old, close to max-age {limit}:"
            " are backups still running?"
        )
    if not young:
        newest = (
            f"the newest good one, {good[-1].name}, is {format_duration(now - good[-1].fresh_at)} old"
            if good
            else "there is no good backup at all"
        )
        result.warnings.clear()
        result.add(
            "backup",
            False,
            f"no backup younger than {limit} ({newest})",
            "check the backup job (`dbkeeper list` shows what the store holds)",
        )
        return None
    chosen = rng.choice(young)
    assert chosen.manifest is not None
    result.backup, result.backup_age = chosen.name, now - chosen.fresh_at
    result.size_bytes = chosen.manifest.size_bytes
    result.add(
        "backup",
        True,
        f"{chosen.name}, {format_duration(result.backup_age)} old, picked at random"
        f" from {len(young)} younger than {limit}",
    )
    return chosen


def _restore_and_check(
    result: DrillResult,
    repo: Repository,
    chosen: Entry,
    options: DrillOptions,
    previous: drill_log.Row | None,
    progress: Progress | None = None,
) -> None:
    doc = chosen.manifest
    assert doc is not None
    scratch = _Scratch(doc, chosen.label, result.started, options.target)
    created = False
    try:
        if progress is not None:
            progress.phase("preparing the scratch database")
        engine = scratch.engine(options.pg_bin)
        result.target = scratch.where or engine.display()
        restored = restore_into(
            repo,
            chosen.name,
            engine,
            RestoreOptions(jobs=default_jobs()),  # the restore a real one would be, timed as such
            identities=list(options.identities) or None,
            progress=progress,
        )
        created = True
        result.restore_seconds = restored.seconds
        result.rows = sum(restored.row_counts.values())
        result.add(
            "restore",
            True,
            f"verified, restored into {restored.target} in {format_seconds(restored.seconds)}:"
            f" {len(restored.row_counts)} tables, {result.rows} rows match the manifest",
        )
        _slow_warning(result, previous)
        if progress is not None and options.smoke:
            progress.phase("running the smoke queries")
        for number, statement in enumerate(options.smoke, 1):
            _smoke(result, engine, number, statement)
    except DbkeeperError as exc:
        if created:
            raise
        result.add("restore", False, exc.message, exc.hint)
    finally:
        if created and options.keep:
            result.kept = True
            result.add("cleanup", True, f"kept {result.target} (--keep): drop it when done")
        elif created:
            _cleanup(result, engine)
        scratch.close(keep=result.kept)


def _smoke(result: DrillResult, engine: Engine, number: int, statement: smoke.Statement) -> None:
    name = f"smoke {number}"
    try:
        rows = [list(r) for r in engine.query(statement.sql)]
    except DbkeeperError as exc:
        result.add(name, False, f"{statement.label} -> {exc.message}", exc.hint)
        return
    outcome = smoke.evaluate(statement, rows)
    result.add(name, outcome.ok, outcome.detail)


def _cleanup(result: DrillResult, engine: Engine) -> None:
    try:
        engine.drop()
    except DbkeeperError as exc:
        result.add("cleanup", False, f"could not drop {result.target}: {exc.message}", "drop it by hand")
        return
    result.add("cleanup", True, f"dropped {result.target}")


def _slow_warning(result: DrillResult, previous: drill_log.Row | None) -> None:
    now, before = result.restore_seconds, previous.restore_seconds if previous else None
    if previous is None or now is None or before is None:
        return
    if now > before * SLOW_FACTOR and now - before >= SLOW_MARGIN_S:
        result.warnings.append(
            f"slow restore: {format_seconds(now)}, {now / max(before, 0.01):.1f}x the {format_seconds(before)} of"
            f" the drill on {previous.date:%Y-%m-%d}"
        )


class _Scratch:
    """Where the drill restores: a new database named ``<db>_drill_<stamp>``.

    PostgreSQL: by default a throwaway cluster of the backup's major that dbkeeper starts and removes itself
    (engines.sandbox_for: a private directory, this OS user or ``postgres`` for root, a Unix socket only), so that
    the drill never connects to a real server; with ``target`` (``--target``), that server, its database part
    replaced. Never a server read from the store.
    SQLite: a file of that name in ``target`` (a directory, or a path whose directory is used), else in a
    private temporary directory removed afterwards. A target of the other engine's kind is not used.
    """

    def __init__(self, doc: Manifest, database: str, started: datetime, target: str | None) -> None:
        self.doc = doc
        self.name = f"{database[:40]}_drill_{stamp(started)}"
        self.target = target
        self.where: str | None = None  # the sandbox, for people
        self._tempdir: str | None = None
        self._stop: Callable[[], None] | None = None

    def engine(self, pg_bin: str | None) -> Engine:
        """The scratch database's engine: on ``target`` (engines.scratch_for places it), else in a sandbox
        (PostgreSQL) or a private temporary directory (SQLite)."""
        postgres_target = bool(self.target and self.target.startswith(("postgresql://", "postgres://")))
        if self.doc.engine == "postgresql" and not postgres_target:
            engine, self._stop, where = sandbox_for(
                "postgresql",
                self.name,
                version=self.doc.server_version,
                roles=self.doc.extra.get("roles", []),
                pg_bin=pg_bin,
            )
            self.where = f"{self.name} in {where}"
            return engine
        found = scratch_for(self.doc.engine, self.name, near=self.target, pg_bin=pg_bin)
        if found is None:
            self._tempdir = tempfile.mkdtemp(prefix="dbkeeper-drill-")
            found = scratch_for(self.doc.engine, self.name, near=self._tempdir)
        assert found is not None
        return found

    def close(self, keep: bool) -> None:
        if self._tempdir and not keep:
            shutil.rmtree(self._tempdir, ignore_errors=True)
        if self._stop is not None and not keep:
            self._stop()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- point-in-time drills -------------------------------------------------------------------------------------

PITR_SUFFIX = " (PITR)"  # a point-in-time drill's name in the log: the source id, then this


@dataclass(frozen=True)
class PitrDrillOptions:
    fetch_command: str  # what the throwaway cluster's restore_command runs (see pitr.recover.PitrRequest)
    fetch_args: tuple[str, ...] = ()
    smoke: tuple[smoke.Statement, ...] = ()
    pg_bin: str | None = None
    identities: tuple[Any, ...] = ()
    margin: timedelta = DEFAULT_MARGIN  # the newest WAL may not hold a commit after a target this close
    timeout: float = 3600.0
    signer: Signer | None = None  # signs the drill's record in the store (config [signing] key)


def run_pitr_drill(
    archive: Any,
    options: PitrDrillOptions,
    *,
    log: str | Path,
    seed: int | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> DrillRun:
    """Restore the source's cluster to a random time T inside its PITR window, in a throwaway data directory
    (socket only, the server's OS user), and prove the point reached against the ledger (pitr.ledger): no row
    after T, the newest at most one interval before it; then the smoke statements, there, paused at T. Logged
    like every drill, under ``<source> (PITR)``, with the point reached, the RTO and the replay rate."""
    from dbkeeper.pitr.window import window

    seed = secrets.randbelow(2**32) if seed is None else seed
    rng = random.Random(seed)  # noqa: S311 - a repeatable choice, not a secret
    t0 = time.monotonic()
    result = DrillResult(archive.source_id + PITR_SUFFIX, clock())
    try:
        found = window(archive)
        if found is None:
            result.add(
                "window",
                False,
                f"no good base backup of {archive.source_id} with WAL archived after it in {archive.store.url}",
                "take one with `dbkeeper basebackup` and check archiving with `dbkeeper wal-verify`",
            )
        elif (target := found.pick(options.margin, rng)) is None:
            result.add(
                "window",
                False,
                f"the window {iso(found.start)} .. {iso(found.end)} is shorter than"
                f" {format_seconds(options.margin.total_seconds())}",
                "wait for more WAL to be archived (archive_timeout bounds how long), then drill again",
            )
        else:
            result.add("window", True, f"{iso(found.start)} .. {iso(found.end)}; target {iso(target)}")
            _pitr_restore_and_check(result, archive, options, found.archive_id, target, clock)
    finally:
        result.total_seconds = time.monotonic() - t0
    row = result.log_row()
    drill_log.append(log, row)
    problem = _record(archive.store, row, archive.source_id, options.signer)
    return DrillRun(archive.store.url, seed, options.margin, str(log), [result], [problem] if problem else [])


def _pitr_restore_and_check(
    result: DrillResult,
    archive: Any,
    options: PitrDrillOptions,
    aid: str,
    target: datetime,
    clock: Callable[[], datetime],
) -> None:
    from dbkeeper.engines.postgres.clients import pick
    from dbkeeper.engines.postgres.recovery import RecoveryServer
    from dbkeeper.pitr import ledger
    from dbkeeper.pitr.recover import PitrRequest, Target, restore_to_point

    work = Path(tempfile.mkdtemp(prefix="dbkeeper-pitr-drill-"))
    work.chmod(0o711)  # the server's OS user must reach the data directory inside
    server: RecoveryServer | None = None
    result.pitr = {"target_time": iso(target), "archive_id": aid}
    try:
        request = PitrRequest(
            datadir=work / "data",
            target=Target("time", time=target),
            action="pause",
            keep_running=True,
            fetch_command=options.fetch_command,
            fetch_args=options.fetch_args,
            pg_bin=options.pg_bin,
            identities=list(options.identities) or None,
            timeout=options.timeout,
            sandbox=True,
        )
        try:
            done = restore_to_point(archive, request, clock=clock)
        except DbkeeperError as exc:
            result.add("restore", False, exc.message, exc.hint)
            return
        pg_ctl = pick("pg_ctl", None, options.pg_bin)
        assert done.socket_dir is not None and done.port is not None
        server = RecoveryServer.for_datadir(Path(done.datadir), pg_ctl, Path(done.socket_dir), done.port, {})
        result.backup = done.backup
        result.restore_seconds = done.rto_s
        result.target = f"a throwaway cluster in {work} (as {server.user}, socket only)"
        result.pitr.update(
            reached_lsn=done.reached_lsn,
            reached_time=done.reached_time,
            rto_seconds=done.rto_s,
            replay_seconds=done.replay_s,
            replay_bytes_per_second=round(done.replay_rate),
        )
        result.add(
            "restore",
            True,
            f"base backup {done.backup} replayed to LSN {done.reached_lsn} (last commit {done.reached_time}) in"
            f" {format_seconds(done.rto_s)}, {human_size(done.replay_rate)}/s",
        )
        running = server
        db = ledger.find_database(lambda sql, name: running.sql(sql, name))
        rows, exists = ledger.rows_near(lambda sql: running.sql(sql, db or "postgres"), target)
        verdict = ledger.judge(rows, target, exists and db is not None)
        if verdict.newest is not None:
            result.pitr["ledger_newest"] = iso(verdict.newest.at)
        result.add("ledger", verdict.ok, verdict.reason, None if verdict.ok else "see docs/PITR.md, the ledger")
        for number, statement in enumerate(options.smoke, 1):
            name = f"smoke {number}"
            try:
                rows_out: list[list[str | None]] = [list(r) for r in running.sql(statement.sql, db or "postgres")]
            except DbkeeperError as exc:
                result.add(name, False, f"{statement.label} -> {exc.message}", exc.hint)
                continue
            outcome = smoke.evaluate(statement, rows_out)
            result.add(name, outcome.ok, outcome.detail)
    finally:
        if server is not None:
            try:
                server.stop("immediate")
            except DbkeeperError as exc:
                result.add(
                    "cleanup",
                    False,
                    f"could not stop the throwaway cluster: {exc.message}",
                    f"pg_ctl -D {work / 'data'} stop",
                )
        shutil.rmtree(work, ignore_errors=True)
        if not (work / "data").exists():
            result.add("cleanup", True, f"removed {work}")
