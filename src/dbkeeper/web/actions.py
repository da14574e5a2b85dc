"""What the dashboard's buttons do (``serve --allow-actions``): back up a source, verify a backup, drill a source.

Each calls the core function its command calls (``runs.backup.back_up``, ``verify.verify``,
``drill.run_drills``) with the options the config gives (the dashboard has no flags for them), so it holds the
same per-source lock as ``dbkeeper backup``, reports to the same ``[notify]`` webhook, appends to the same drill
log and rewrites the same metrics file. Only sources in the config are backed up: a source is reached by its URL
in the config, never by what a manifest in the store says (whoever can write the store is not trusted). There is
no restore: replacing a database is a decision for a person at a terminal.

Every action is logged (who, what, the outcome) on the server's stderr and kept in a short in-memory history the
pages show.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dbkeeper.config import Config, SourceConfig
from dbkeeper.engines import source_key
from dbkeeper.errors import DbkeeperError, NotFound
from dbkeeper.repo import Repository
from dbkeeper.repo.sources import source_id
from dbkeeper.runs import configured

log = logging.getLogger("dbkeeper.web")
HISTORY = 200


@dataclass
class ActionResult:
    id: int
    kind: str  # backup, verify, drill
    target: str  # a source id or a backup's name
    who: str
    started: datetime
    ok: bool = False
    summary: str = ""
    lines: list[str] = field(default_factory=list)  # checks, hints
    seconds: float = 0.0


class Actions:
    def __init__(self, cfg: Config, repo: Repository, drill_log: str) -> None:
        self.cfg = cfg
        self.repo = repo
        self.drill_log = drill_log
        self._ids = itertools.count(1)
        self._history: collections.deque[ActionResult] = collections.deque(maxlen=HISTORY)
        self._lock = threading.Lock()

    def history(self, target_prefix: str | None = None) -> list[ActionResult]:
        """Newest first; only those whose target is ``target_prefix`` or lies under it (``app`` and ``app/…``)."""
        with self._lock:
            done = list(self._history)
        if target_prefix is not None:
            done = [a for a in done if a.target == target_prefix or a.target.startswith(target_prefix + "/")]
        return done[::-1]

    def find(self, action_id: int) -> ActionResult | None:
        return next((a for a in self.history() if a.id == action_id), None)

    def configured_source(self, sid: str) -> SourceConfig | None:
        """The config's source whose id is ``sid`` (its name, else the id derived from its URL), or None."""
        for src in self.cfg.sources:
            try:
                if source_id(source_key(src.url), src.name) == sid:
                    return src
            except DbkeeperError:
                continue
        return None

    # -- the actions --------------------------------------------------------------------------------------------
    def backup(self, sid: str, who: str) -> ActionResult:
        return self._run("backup", sid, who, lambda result: self._backup(sid, result))

    def verify(self, name: str, who: str) -> ActionResult:
        return self._run("verify", name, who, lambda result: self._verify(name, result))

    def drill(self, sid: str, who: str) -> ActionResult:
        return self._run("drill", sid, who, lambda result: self._drill(sid, result))

    def _run(self, kind: str, target: str, who: str, body: Any) -> ActionResult:
        result = ActionResult(next(self._ids), kind, target, who, datetime.now(UTC).replace(microsecond=0))
        log.info("action %s %s requested by %s", kind, target, who)
        t0 = time.monotonic()
        try:
            body(result)
        except DbkeeperError as exc:
            result.ok = False
            result.summary = exc.message
            if exc.hint:
                result.lines.append(f"Try: {exc.hint}")
        result.seconds = time.monotonic() - t0
        log.info(
            "action %s %s by %s: %s in %.1fs: %s",
            kind,
            target,
            who,
            "OK" if result.ok else "FAILED",
            result.seconds,
            result.summary,
        )
        with self._lock:
            self._history.append(result)
        return result

    def _backup(self, sid: str, result: ActionResult) -> None:
        from dbkeeper.notify import Notifier
        from dbkeeper.pipeline import BackupOptions
        from dbkeeper.runs.backup import BackupPlan, Source, back_up

        src = self.configured_source(sid)
        if src is None:
            raise NotFound(f"source {sid} is not in the config", "the dashboard backs up only the config's [[sources]]")
        cfg = self.cfg
        plan = BackupPlan(
            sources=(Source(src.label, src.url, src.name),),
            options=BackupOptions(
                recipients=tuple(cfg.encryption_recipients),
                signer=configured.signer(cfg),
            ),
            pg_bin=cfg.pg_bin,
            copy_to=tuple(configured.repository(url, cfg) for url in cfg.copy_to),
        )
        with Notifier.for_job(cfg, "backup").run() as report:
            report.details.update(databases=[src.label], store=self.repo.url, via="dashboard")
            results = back_up(plan, self.repo, report)
        self._metrics()
        one = results[0]
        result.ok = one.ok
        if one.manifest is not None:
            doc = one.manifest
            result.summary = f"{doc.name}: {sum(doc.row_counts.values())} rows in {doc.duration_s:.1f}s"
        if not one.ok:
            result.summary += " (the copy after it failed)" if one.manifest else ""

    def _verify(self, name: str, result: ActionResult) -> None:
        from dbkeeper.verify import verify

        report = verify(self.repo, name, configured.identities(self.cfg))
        result.ok = report.ok
        result.summary = f"{name}: " + ("verified" if report.ok else "FAILED: " + report.first_problem())
        result.lines = [f"{'OK' if c.ok else 'FAILED'} {c.name}: {c.detail}" for c in report.checks]

    def _drill(self, sid: str, result: ActionResult) -> None:
        from dbkeeper import smoke
        from dbkeeper.drill import DrillOptions, run_drills

        conf = self.cfg.drill
        options = DrillOptions(
            max_age=conf.max_age or DrillOptions.max_age,
            smoke=tuple(smoke.load(conf.smoke)) if conf.smoke else (),
            target=conf.target,
            pg_bin=self.cfg.pg_bin,
            identities=tuple(configured.identities(self.cfg) or ()),
            signer=configured.signer(self.cfg),
        )
        run = run_drills(self.repo, options, log=self.drill_log, source=sid)
        self._metrics()
        result.ok = run.ok
        passed = sum(d.ok for d in run.drills)
        result.summary = f"{passed} of {len(run.drills)} drill(s) passed; logged to {run.log}"
        for d in run.drills:
            result.lines.append(f"{'PASS' if d.ok else 'FAIL'} {d.database} ({d.backup or 'no backup'})")
            result.lines += [f"  {'OK' if c.ok else 'FAILED'} {c.name}: {c.detail}" for c in d.checks]

    def _metrics(self) -> None:
        """Rewrite the configured metrics file, as the commands do after a backup or a drill."""
        if not self.cfg.metrics_file:
            return
        from dbkeeper import metrics

        try:
            metrics.update(self.cfg.metrics_file, self.repo, self.drill_log)
        except DbkeeperError as exc:
            log.warning("metrics file: %s", exc.message)
