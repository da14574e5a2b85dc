"""How the outcomes several commands share are shown: a copy's destinations, a prune's summary."""

from __future__ import annotations

from dbkeeper.cli.common import print_error
from dbkeeper.copy import CopyResult
from dbkeeper.prune import RULE_FLAGS, PruneResult
from dbkeeper.retention import Policy


def copy_lines(result: CopyResult) -> list[str]:
    lines = []
    for o in result.outcomes:
        if o.error is None:
            lines.append(f"{'copied to' if o.copied else 'already at'} {o.location}")
        else:
            lines.append(f"FAILED to copy to {o.destination}")
    return lines


def copy_failures(result: CopyResult) -> int:
    """Each failed destination as an error on stderr; the exit code is the first failure's (0 when none)."""
    for o in result.failures:
        assert o.error is not None
        print_error(o.error, f"copy to {o.destination}")
    first = next((o.error for o in result.failures), None)
    return first.exit_code if first else 0


def prune_summary(result: PruneResult) -> str:
    kept, removed = len(result.kept), len(result.removed)
    head = f"{result.store}: policy {describe_policy(result.policy)}: kept {kept}, "
    if result.dry_run:
        return head + f"would remove {removed} (dry run: nothing was deleted)"
    deleted = sum(d.deleted for d in result.decisions)
    failed = f", {len(result.failures)} could not be deleted" if result.failures else ""
    return head + f"removed {deleted}{failed}"


def describe_policy(policy: Policy) -> str:
    rules = [f"{k} {getattr(policy, k)}" for k in RULE_FLAGS if getattr(policy, k)]
    return ", ".join(rules) + (f", keep_min {policy.keep_min}" if policy.keep_min != 1 else "")
