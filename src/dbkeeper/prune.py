"""Prune: apply the retention policy to each series in a store, verify what it keeps, delete what it removes.

The catalog is grouped by series (one database of one source: ``repo.catalog``; never the database name alone, so
two servers' ``casino`` never share a retention group) and ``retention.apply_policy`` decides per series, dated by
the manifests' ``created_at`` and with ``now`` from the injected clock.

What "good" means. The policy counts only good backups, and a backup that counts pushes older ones out, so a
counted backup that cannot be restored would cost a good one. Catalog status ok (manifest readable and naming its
file, size as recorded, ``.sha256`` present) is necessary but blind to a flipped byte. So before anything is
deleted, every good backup the policy keeps and counts (kept, good, not dated in the future) is checked with
``verify.verify``, the same check as ``dbkeeper verify``: both sidecars against the stored bytes, whole
decompression, the dump's header and trailer or SQLite's integrity_check, and the row counts. One that fails is
marked damaged (kept, never counted, left for a human, like any broken entry) and the policy is applied again,
until every good backup that is kept has passed. Each backup is read at most once per run.

- When the policy removes nothing, nothing is verified: no decision would depend on it.
- Removed backups are not verified: a damaged one is removed like a good one.
- An encrypted backup without an identity (a backup host holds only the public recipients) is checked as far as
  its stored bytes go (manifest, sidecar, size, checksum); the decision says so. With ``identities`` it is
  decrypted and checked fully.
- ``dry_run`` verifies the same way (it only reads), so it shows the decisions the real run would make; it runs
  the same deletions against a DryRunStore (restic's dry-run backend), which records them and changes nothing.

Deletion order per backup: manifest first, then ``.sha256``, then the data. A prune stopped half way leaves a data
file without a manifest, which every listing shows as incomplete, never as a good backup with missing data. A
failed deletion is recorded on its decision and the others go on; nothing is deleted unless every kept good backup
of its database passed verification.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dbkeeper.config import RetentionConfig
from dbkeeper.errors import CheckFailed, DbkeeperError
from dbkeeper.pitr.retain import ArchivePrune, prune_pitr
from dbkeeper.repo import Entry, Repository
from dbkeeper.repo.catalog import FUTURE
from dbkeeper.repo.manifest import iso
from dbkeeper.retention import Candidate, Decision, Policy, apply_policy
from dbkeeper.storage import DryRunStore
from dbkeeper.verify import Report, verify

FAILED_VERIFY = "failed verification"
RULE_FLAGS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def policy_from(flags: Mapping[str, int | None], configured: RetentionConfig) -> Policy:
    """The policy a run uses: rule flags if any is given, else the config's ``[retention]`` rules, else the default.

    Rule flags replace the configured rules as a whole (``--keep-daily 7`` alone does not inherit keep_last), as
    restic's ``forget`` takes its policy from its flags. ``keep_min`` is a floor, not a rule: the flag's value,
    else the config's, else 1.
    """
    rules = {k: v for k, v in flags.items() if k in RULE_FLAGS and v is not None}
    if not rules:
        rules = configured.rules()
    if not rules:
        rules = {k: getattr(Policy.default(), k) for k in RULE_FLAGS}
    keep_min = flags.get("keep_min")
    if keep_min is None:
        keep_min = 1 if configured.keep_min is None else configured.keep_min
    return Policy(**rules, keep_min=keep_min)


@dataclass
class PruneDecision:
    source_id: str
    database: str
    name: str
    created: datetime
    keep: bool
    reasons: tuple[str, ...]
    status: str  # the catalog's status, or FAILED_VERIFY
    problem: str | None = None  # why it is not good
    verified: bool | None = None  # None: not checked in this run
    verify_note: str = ""  # what the check covered when it could not cover everything
    deleted: bool = False
    error: DbkeeperError | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source_id,
            "database": self.database,
            "name": self.name,
            "created_at": iso(self.created),
            "action": "keep" if self.keep else "remove",
            "reasons": list(self.reasons),
            "status": self.status,
            "problem": self.problem,
            "verified": self.verified,
            "verify_note": self.verify_note or None,
            "deleted": self.deleted,
            "error": self.error.message if self.error else None,
        }


@dataclass
class PruneResult:
    store: str
    policy: Policy
    now: datetime
    dry_run: bool
    decisions: list[PruneDecision] = field(default_factory=list)  # by series, each newest first
    pitr: list[ArchivePrune] = field(default_factory=list)  # base backups and WAL, per archive

    @property
    def kept(self) -> list[PruneDecision]:
        return [d for d in self.decisions if d.keep]

    @property
    def removed(self) -> list[PruneDecision]:
        return [d for d in self.decisions if not d.keep]

    @property
    def failures(self) -> list[PruneDecision]:
        return [d for d in self.decisions if d.error is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.failures and not any(a.failures for a in self.pitr),
            "store": self.store,
            "dry_run": self.dry_run,
            "now": iso(self.now),
            "policy": dataclasses.asdict(self.policy),
            "kept": len(self.kept),
            "removed": len(self.removed),
            "deleted": sum(d.deleted for d in self.decisions),
            "decisions": [d.to_json() for d in self.decisions],
            "pitr": [a.to_json() for a in self.pitr],
        }


def run_prune(
    repo: Repository,
    policy: Policy,
    *,
    source: str | None = None,
    database: str | None = None,
    dry_run: bool = False,
    identities: list[Any] | None = None,
    clock: Callable[[], datetime] = utcnow,
    verified: Mapping[str, Report] | None = None,
) -> PruneResult:
    """Decide for every series in the store (or only those of ``source``/``database``), verify what counts, then
    delete.

    ``verified`` holds reports the caller already has (``backup --prune`` verified its new backup). UsageError
    for an empty policy, before anything is read.
    """
    policy.check()
    repo.require_store()
    now = clock()
    if dry_run:
        repo = Repository(DryRunStore(repo.store), repo.verify_key)
    result = PruneResult(repo.url, policy, now, dry_run)
    reports: dict[str, Report] = dict(verified or {})
    for entries in repo.scan(now, source=source, database=database).series().values():
        result.decisions.extend(_decide(repo, entries, policy, now, identities, reports))
    for decision in result.removed:
        _delete(repo, decision, dry_run)
    if database is None:  # base backups and WAL belong to a cluster, not to one database
        result.pitr = prune_pitr(repo.store, policy, now, source=source, verify_key=repo.verify_key, dry_run=dry_run)
    return result


def plan(entries: list[Entry], policy: Policy, now: datetime) -> list[PruneDecision]:
    """The policy's decisions for one series from the catalog alone, newest first: what ``prune --dry-run`` decides
    before it verifies anything (the dashboard shows it on every page load, where reading every kept backup is
    out of the question). A real prune verifies the kept backups first, so one that fails verification then
    stops counting and may keep an older one: these decisions carry ``verified`` None to say so."""
    policy.check()
    decisions = apply_policy(
        [Candidate(e.name, e.created, e.good or e.status == FUTURE, e.seq) for e in entries], policy, now
    )
    by_name = {e.name: e for e in entries}
    return [_decision(by_name[d.key], d, None) for d in decisions]


def prune_after_backup(
    repo: Repository,
    name: str,
    policy: Policy,
    *,
    identities: list[Any] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> PruneResult:
    """``backup --prune``: verify the new backup ``name``, then prune its series. CheckFailed if it fails."""
    policy.check()
    report = verify(repo, name, identities, without_key=True)
    if not report.ok or report.manifest is None:
        raise CheckFailed(
            f"the new backup {name} failed verification ({report.first_problem()}); nothing was pruned",
            f"run `dbkeeper verify {repo.describe(name)}` and check the source and the store",
        )
    doc = report.manifest
    source = doc.source_id or doc.database  # a legacy set's source is its database
    return run_prune(
        repo, policy, source=source, database=doc.database, identities=identities, clock=clock, verified={name: report}
    )


def _decide(
    repo: Repository,
    entries: list[Entry],
    policy: Policy,
    now: datetime,
    identities: list[Any] | None,
    reports: dict[str, Report],
) -> list[PruneDecision]:
    """Apply the policy, verify the kept good backups that count, and again without any that failed."""
    by_name = {e.name: e for e in entries}
    while True:
        # A set dated in the future goes to the policy as it is, which keeps it for that reason and counts it not.
        good = {
            e.name for e in entries if (e.good or e.status == FUTURE) and (e.name not in reports or reports[e.name].ok)
        }
        decisions = apply_policy([Candidate(e.name, e.created, e.name in good, e.seq) for e in entries], policy, now)
        if all(d.keep for d in decisions):
            break
        pending = [
            d.key
            for d in decisions
            if d.keep and d.key in good and by_name[d.key].created <= now and d.key not in reports
        ]
        if not pending:
            break
        for key in pending:
            reports[key] = verify(repo, key, identities, without_key=True)
        if all(reports[key].ok for key in pending):
            break
    return [_decision(by_name[d.key], d, reports.get(d.key)) for d in decisions]


def _decision(entry: Entry, decision: Decision, report: Report | None) -> PruneDecision:
    out = PruneDecision(
        entry.source_id, entry.database, entry.name, entry.created, decision.keep, decision.reasons, entry.status
    )
    out.problem = entry.problem
    if report is not None:
        out.verified = report.ok
        out.verify_note = report.partial
        if not report.ok:
            out.status, out.problem = FAILED_VERIFY, report.first_problem()
    return out


def _delete(repo: Repository, decision: PruneDecision, dry_run: bool) -> None:
    """Manifest first, then the sidecar, then the data: what is left half way is incomplete, never good."""
    try:
        repo.delete(decision.name)
    except DbkeeperError as exc:
        decision.error = exc
    else:
        decision.deleted = not dry_run
