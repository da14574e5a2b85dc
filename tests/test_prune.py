"""prune on real LocalStore directories: what it keeps, what it verifies first, what it deletes and in which order.

Histories are real backups of a small SQLite database, planted through the real Store (tests/history.py), so
every kept backup is verified for real. ``now`` is 2026-11-27 12:00 UTC; backups are at 02:00 unless said.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from dbkeeper.config import RetentionConfig
from dbkeeper.crypto import load_identities
from dbkeeper.errors import CheckFailed, UsageError
from dbkeeper.pipeline import BackupOptions
from dbkeeper.prune import FAILED_VERIFY, PruneDecision, PruneResult, policy_from, prune_after_backup, run_prune
from dbkeeper.repo import Repository
from dbkeeper.retention import DAMAGED, FUTURE, NEWEST, NO_RULE, Policy
from dbkeeper.storage.local import LocalStore
from history import (
    NOW,
    Template,
    at,
    daily,
    files,
    flip_byte,
    name_at,
    plant,
    real_backup,
    small_app,
    snapshot,
    triples,
    undeletable,
)


def clock() -> Callable[[], datetime]:
    return lambda: NOW


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "backups")


@pytest.fixture
def template(tmp_path: Path) -> Template:
    """One real backup of a small SQLite app, made in a scratch store."""
    return real_backup(LocalStore(tmp_path / "scratch"), small_app(tmp_path / "app.db"), at("2020-01-01"))


def decision(result: PruneResult, name: str) -> PruneDecision:
    return next(d for d in result.decisions if d.name == name)


# GFS over 400 daily backups, 2025-10-24 .. 2026-11-27, worked out by hand from the calendar:
#   daily 7    -> 2026-11-21 .. 2026-11-27
#   weekly 4   -> W48 Fri 11-27, W47 Sun 11-22, W46 Sun 11-15, W45 Sun 11-08
#   monthly 6  -> 11-27, and the last day of each month 2026-06 .. 2026-10
#   yearly 2   -> 11-27 for 2026, 2025-12-31 for 2025
GFS = Policy(keep_daily=7, keep_weekly=4, keep_monthly=6, keep_yearly=2)
GFS_KEPT = [
    *(f"2026-11-{d}" for d in range(27, 20, -1)),
    "2026-11-15",
    "2026-11-08",
    "2026-10-31",
    "2026-09-30",
    "2026-08-31",
    "2026-07-31",
    "2026-06-30",
    "2025-12-31",
]


def test_gfs_over_400_days_keeps_exactly_what_the_policy_names(store: LocalStore, template: Template) -> None:
    history = daily(store, template, "2026-11-27", 400)
    result = run_prune(Repository(store), GFS, clock=clock())
    kept = [name_at(d) for d in GFS_KEPT]
    assert [d.name for d in result.kept] == kept
    assert len(result.removed) == 400 - len(kept)
    assert all(d.deleted for d in result.removed) and not result.failures
    assert files(store) == triples(*kept)
    assert all(d.verified for d in result.kept)  # every kept backup was read and checked in full
    assert all(d.verified is None for d in result.removed)  # removed ones were not
    assert decision(result, name_at("2026-11-27")).reasons == (
        "daily 2026-11-27",
        "weekly 2026-W48",
        "monthly 2026-11",
        "yearly 2026",
        NEWEST,
    )
    assert decision(result, history[-1]).reasons == (NO_RULE,)
    assert all(e.good for e in Repository(store).scan(NOW).entries)


def test_real_backups_made_by_the_pipeline(store: LocalStore, tmp_path: Path) -> None:
    db = small_app(tmp_path / "app.db")
    names = [real_backup(store, db, at(f"2026-11-2{d}")).manifest.name for d in range(4)]
    result = run_prune(Repository(store), Policy(keep_last=2), clock=clock())
    assert [d.name for d in result.kept] == names[:1:-1]
    assert files(store) == triples(*names[2:])


def test_newest_good_backup_survives_a_minimal_policy_and_newer_broken_ones(
    store: LocalStore, template: Template
) -> None:
    good = daily(store, template, "2026-11-24", 3)
    incomplete = name_at("2026-11-27")
    store.put(incomplete, [template.data])  # a backup that never got its manifest
    wrong_size = plant(store, template, at("2026-11-26"))
    store.put(wrong_size, [template.data + b"x"])  # the catalog calls it broken
    result = run_prune(Repository(store), Policy(keep_last=1, keep_min=0), clock=clock())
    assert decision(result, incomplete).reasons == (DAMAGED,)
    assert decision(result, wrong_size).reasons == (DAMAGED,)
    assert decision(result, good[0]).reasons == ("last 1", NEWEST)
    assert {d.name for d in result.removed} == set(good[1:])
    assert files(store) == sorted([incomplete, *triples(wrong_size, good[0])])


@pytest.mark.parametrize("damage", ["flipped byte", "rewritten checksums"])
def test_a_damaged_newest_backup_does_not_count(store: LocalStore, template: Template, damage: str) -> None:
    newest, second, oldest = daily(store, template, "2026-11-27", 3)
    data = store.local_path(newest)
    if damage == "flipped byte":
        flip_byte(data)
    else:  # truncated, with manifest and sidecar rewritten to match: only decompression can tell
        cut = data.read_bytes()[:-100]
        digest = hashlib.sha256(cut).hexdigest()
        data.write_bytes(cut)
        Path(f"{data}.sha256").write_text(f"{digest}  {newest.split('/')[-1]}\n")
        doc = json.loads(Path(f"{data}.json").read_text())
        Path(f"{data}.json").write_text(json.dumps({**doc, "sha256": digest, "size_bytes": len(cut)}))
    assert all(e.good for e in Repository(store).scan(NOW).entries)  # the cheap checks see nothing wrong

    result = run_prune(Repository(store), Policy(keep_last=1), clock=clock())
    bad = decision(result, newest)
    assert bad.keep and bad.reasons == (DAMAGED,) and bad.status == FAILED_VERIFY
    assert bad.verified is False
    expected = "checksum" if damage == "flipped byte" else "decompress"
    assert bad.problem.startswith(expected)
    assert decision(result, second).reasons == ("last 1", NEWEST)
    assert decision(result, second).verified
    assert [d.name for d in result.removed] == [oldest]
    assert files(store) == triples(newest, second)


def test_future_dated_backups_are_kept_and_not_counted(store: LocalStore, template: Template) -> None:
    future = plant(store, template, at("2027-03-01"))
    past = daily(store, template, "2026-11-27", 3)
    result = run_prune(Repository(store), Policy(keep_last=1), clock=clock())
    assert decision(result, future).reasons == (FUTURE,)
    assert decision(result, future).verified is None  # not counted, so not checked
    assert decision(result, past[0]).reasons == ("last 1", NEWEST)
    assert files(store) == triples(future, past[0])


def test_dry_run_deletes_nothing_and_decides_as_the_real_run(store: LocalStore, template: Template) -> None:
    daily(store, template, "2026-11-27", 30)
    flip_byte(store.local_path(name_at("2026-11-26")))
    before = snapshot(store)
    dry = run_prune(Repository(store), Policy(keep_last=3, keep_weekly=2), dry_run=True, clock=clock())
    assert snapshot(store) == before
    assert dry.removed and not any(d.deleted for d in dry.decisions)
    assert decision(dry, name_at("2026-11-26")).status == FAILED_VERIFY
    real = run_prune(Repository(store), Policy(keep_last=3, keep_weekly=2), clock=clock())
    assert [(d.name, d.keep, d.reasons) for d in dry.decisions] == [(d.name, d.keep, d.reasons) for d in real.decisions]


def test_nothing_to_remove_means_nothing_to_verify(store: LocalStore, template: Template) -> None:
    names = daily(store, template, "2026-11-27", 5)
    flip_byte(store.local_path(names[0]))
    result = run_prune(Repository(store), Policy.default(), clock=clock())
    assert not result.removed
    assert all(d.verified is None for d in result.decisions)
    assert files(store) == triples(*names)


def test_incomplete_and_broken_entries_are_never_removed(store: LocalStore, template: Template) -> None:
    names = daily(store, template, "2026-11-27", 3)
    old_incomplete = name_at("2020-01-01")
    store.put(old_incomplete, [template.data])
    orphan = plant(store, template, at("2020-02-01"))
    store.delete(orphan)  # a manifest whose data is gone
    result = run_prune(Repository(store), Policy(keep_last=1), clock=clock())
    assert {d.name for d in result.removed} == set(names[1:])
    assert decision(result, old_incomplete).keep and decision(result, orphan).keep
    assert files(store) == sorted([old_incomplete, orphan + ".json", orphan + ".sha256", *triples(names[0])])


def test_each_database_is_pruned_on_its_own(store: LocalStore, template: Template) -> None:
    apps = daily(store, template, "2026-11-27", 3)
    others = daily(store, template, "2026-11-20", 3, database="other")
    result = run_prune(Repository(store), Policy(keep_last=1), clock=clock())
    assert [d.name for d in result.kept] == [apps[0], others[0]]
    only = run_prune(Repository(store), Policy(keep_last=1), database="other", dry_run=True, clock=clock())
    assert {d.database for d in only.decisions} == {"other"}


class RecordingStore(LocalStore):
    """A real LocalStore that remembers the order of deletions (observation only)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.deleted: list[str] = []

    def delete(self, name: str) -> None:
        self.deleted.append(name)
        super().delete(name)


def test_deletion_order_is_manifest_then_signature_then_sidecar_then_data(tmp_path: Path, template: Template) -> None:
    store = RecordingStore(tmp_path / "backups")
    names = daily(store, template, "2026-11-27", 3)
    run_prune(Repository(store), Policy(keep_last=1), clock=clock())
    assert store.deleted == [n + suffix for n in names[1:] for suffix in (".json", ".json.sig", ".sha256", "")]


def test_a_deletion_that_fails_half_way_leaves_an_incomplete_entry_never_a_good_one(
    store: LocalStore, template: Template
) -> None:
    names = daily(store, template, "2026-11-27", 3)
    stuck = names[1]
    with undeletable(store.local_path(stuck)):
        result = run_prune(Repository(store), Policy(keep_last=1), clock=clock())
        failed = decision(result, stuck)
        assert failed.error is not None and not failed.deleted
        assert "permission denied" in failed.error.message
        assert result.failures == [failed]
        assert decision(result, names[2]).deleted  # the others went on
        assert files(store) == sorted([stuck, *triples(names[0])])
        entry = next(e for e in Repository(store).scan(NOW).entries if e.name == stuck)
        assert entry.status == "incomplete"
        again = run_prune(Repository(store), Policy(keep_last=1), clock=clock())
        assert decision(again, stuck).keep and not again.removed


def test_an_empty_policy_is_refused_before_anything_is_read(store: LocalStore, template: Template) -> None:
    daily(store, template, "2026-11-27", 3)
    with pytest.raises(UsageError, match="no keep rule"):
        run_prune(Repository(store), Policy(keep_last=0), clock=clock())
    assert len(files(store)) == 9


def test_encrypted_backups_are_checked_without_the_key_and_fully_with_it(
    store: LocalStore, tmp_path: Path, age_key: tuple[Path, str]
) -> None:
    key, recipient = age_key
    options = BackupOptions(recipients=(recipient,))
    template = real_backup(LocalStore(tmp_path / "scratch"), small_app(tmp_path / "app.db"), at("2020-01-01"), options)
    names = daily(store, template, "2026-11-27", 4)
    flip_byte(store.local_path(names[0]))

    dry = run_prune(Repository(store), Policy(keep_last=2), dry_run=True, clock=clock())
    assert decision(dry, names[0]).status == FAILED_VERIFY
    assert [d.name for d in dry.kept if d.verified] == names[1:3]
    assert all("stored bytes only" in d.verify_note for d in dry.kept if d.verified)

    full = run_prune(Repository(store), Policy(keep_last=2), identities=load_identities(key), clock=clock())
    assert [d.name for d in full.kept if d.verified] == names[1:3]
    assert all(d.verify_note == "" for d in full.kept if d.verified)
    assert files(store) == triples(*names[:3])


def test_prune_after_backup_verifies_the_new_backup_first(store: LocalStore, template: Template) -> None:
    names = daily(store, template, "2026-11-27", 4)
    flip_byte(store.local_path(names[0]))
    with pytest.raises(CheckFailed, match="nothing was pruned"):
        prune_after_backup(Repository(store), names[0], Policy(keep_last=1), clock=clock())
    assert len(files(store)) == 12
    result = prune_after_backup(Repository(store), names[1], Policy(keep_last=2), clock=clock())
    assert [d.name for d in result.kept] == names[:3]  # the damaged one and the two that count
    assert files(store) == triples(*names[:3])


def test_prune_after_backup_touches_only_that_database(store: LocalStore, template: Template) -> None:
    apps = daily(store, template, "2026-11-27", 3)
    others = daily(store, template, "2026-11-27", 3, database="other")
    prune_after_backup(Repository(store), apps[0], Policy(keep_last=1), clock=clock())
    assert files(store) == triples(apps[0], *others)


@pytest.mark.parametrize(
    ("flags", "configured", "expected"),
    [
        ({}, {}, Policy(keep_last=14)),
        ({}, {"keep_daily": 7, "keep_min": 2}, Policy(keep_daily=7, keep_min=2)),
        ({"keep_weekly": 4}, {"keep_daily": 7, "keep_last": 3}, Policy(keep_weekly=4)),
        ({"keep_weekly": 4}, {"keep_daily": 7, "keep_min": 3}, Policy(keep_weekly=4, keep_min=3)),
        ({"keep_min": 5}, {"keep_daily": 7, "keep_min": 3}, Policy(keep_daily=7, keep_min=5)),
        ({"keep_min": 2}, {}, Policy(keep_last=14, keep_min=2)),
        ({"keep_last": None, "keep_monthly": -1}, {}, Policy(keep_monthly=-1)),
    ],
)
def test_policy_from_flags_else_config_else_default(
    flags: dict[str, int | None], configured: dict[str, int], expected: Policy
) -> None:
    assert policy_from(flags, RetentionConfig(**configured)) == expected


def test_policy_from_refuses_bad_numbers() -> None:
    with pytest.raises(UsageError):
        policy_from({"keep_last": -3}, RetentionConfig())
    assert (
        dataclasses.asdict(policy_from({"keep_last": 0}, RetentionConfig()))["keep_last"] == 0
    )  # empty: refused when applied


def test_the_plan_is_the_dry_runs_decisions_before_verification(store: LocalStore, template: Template) -> None:
    """``plan`` (what the dashboard shows) decides as ``prune --dry-run`` does when every kept backup verifies, and
    without reading a single backup; a backup that would fail verification is where they part."""
    from dbkeeper.prune import plan

    daily(store, template, "2026-11-27", 20)
    policy = Policy(keep_daily=5, keep_weekly=2)
    repo = Repository(store)
    entries = repo.scan(NOW).entries
    planned = plan(entries, policy, NOW)
    dry = run_prune(repo, policy, dry_run=True, clock=clock())
    assert [(d.name, d.keep, d.reasons) for d in planned] == [(d.name, d.keep, d.reasons) for d in dry.decisions]
    assert all(d.verified is None for d in planned) and sum(not d.keep for d in planned) > 0

    kept = [d.name for d in planned if d.keep]
    flip_byte(store.local_path(kept[1]))
    assert [(d.name, d.keep) for d in plan(repo.scan(NOW).entries, policy, NOW)] == [(d.name, d.keep) for d in planned]
    redone = run_prune(repo, policy, dry_run=True, clock=clock())
    assert decision(redone, kept[1]).status == FAILED_VERIFY
    with pytest.raises(UsageError):
        plan(entries, Policy(), NOW)
