"""dbkeeper prune: apply the retention policy to a store; --dry-run shows every decision and deletes nothing."""

from __future__ import annotations

import argparse
from typing import Any

from dbkeeper.cli.common import (
    add_identity,
    add_json,
    add_selection,
    add_store,
    add_verify_key,
    emit_json,
    identities,
    load_config,
    open_repo_for,
    print_error,
    store_url,
)
from dbkeeper.cli.render import prune_summary
from dbkeeper.errors import EXIT_FAILED
from dbkeeper.notify import Notifier
from dbkeeper.prune import RULE_FLAGS, PruneDecision, PruneResult, policy_from, run_prune
from dbkeeper.repo.manifest import iso

_FLAG_HELP = {
    "keep_last": "keep the N newest backups",
    "keep_daily": "keep the newest backup of each of the last N days that have one",
    "keep_weekly": "keep the newest backup of each of the last N ISO weeks that have one",
    "keep_monthly": "keep the newest backup of each of the last N months that have one",
    "keep_yearly": "keep the newest backup of each of the last N years that have one",
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "prune",
        help="remove the backups the retention policy does not keep",
        description="Apply the retention policy (restic's forget rules, UTC) to each database of each source in the"
        " store (never to two sources together, even when their databases share a name) and delete"
        " the backups it does not keep. The policy comes from the --keep-* flags, else [retention] in the config,"
        " else keep_last = 14. Only complete backups that pass verification count toward the policy: the backups"
        " it would keep are verified before anything is deleted. Damaged, incomplete and future-dated backups are"
        " never removed, nor the newest good one. N = -1 keeps one in every period.",
    )
    add_store(p)
    add_verify_key(p)
    add_selection(p)
    for flag in RULE_FLAGS:
        p.add_argument(f"--{flag.replace('_', '-')}", type=int, metavar="N", help=_FLAG_HELP[flag])
    p.add_argument("--keep-min", type=int, metavar="N", help="always keep the N newest good backups (default 1)")
    p.add_argument("--dry-run", action="store_true", help="show every decision and its reasons; delete nothing")
    add_identity(p)
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    with Notifier.for_job(cfg, "prune").run() as report:
        policy = policy_from({k: getattr(args, k) for k in (*RULE_FLAGS, "keep_min")}, cfg.retention)
        repo = open_repo_for(store_url(args, cfg), cfg, args)
        report.details["store"] = repo.url
        result = run_prune(
            repo,
            policy,
            source=args.source,
            database=args.database,
            dry_run=args.dry_run,
            identities=identities(args, cfg),
        )
        report.summary = prune_summary(result)
        for failed in result.failures:
            assert failed.error is not None
            report.fail(failed.error.message, failed.error.hint, source=failed.name)
    if args.json:
        emit_json(result.to_json())
    else:
        print("\n".join(render(result)))
    for failed in result.failures:
        assert failed.error is not None
        print_error(failed.error)
    pitr_failures = [f for a in result.pitr for f in a.failures]
    for pitr_failed in pitr_failures:
        assert pitr_failed.error is not None
        print_error(pitr_failed.error)
    return EXIT_FAILED if result.failures or pitr_failures else 0


def render(result: PruneResult) -> list[str]:
    """A table of decisions, newest first per series, and a summary line."""
    lines = []
    if result.decisions:
        width = max(len(d.name) for d in result.decisions)
        lines.append(f"{'ACTION':<7} {'BACKUP':<{width}}  {'CREATED':<20}  WHY")
        for d in result.decisions:
            action = "keep" if d.keep else ("remove" if result.dry_run or d.deleted else "FAILED")
            lines.append(f"{action:<7} {d.name:<{width}}  {iso(d.created)}  {_why(d)}")
    lines.append(prune_summary(result))
    for archive in result.pitr:
        lines.append(f"point-in-time recovery, {archive.source_id} archive {archive.archive_id}:")
        for b in archive.backups:
            action = "keep" if b.keep else ("remove" if result.dry_run or b.deleted else "FAILED")
            problem = f"; {b.status}: {b.problem}" if b.problem else ""
            lines.append(f"  {action:<7} base backup {b.id}  {', '.join(b.reasons)}{problem}")
        lines.extend(f"  {line}" for line in archive.wal_summary())
    return lines


def _why(d: PruneDecision) -> str:
    parts = [", ".join(d.reasons)]
    if d.problem:
        parts.append(f"{d.status}: {d.problem}")
    elif d.verified:
        parts.append(f"verified ({d.verify_note})" if d.verify_note else "verified")
    if d.error:
        parts.append(f"not deleted: {d.error.message}")
    return "; ".join(parts)
