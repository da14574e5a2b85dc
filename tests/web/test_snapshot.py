"""The dashboard's snapshot of a store answers the core functions exactly as a fresh scan of the store would."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dbkeeper import metrics, status
from dbkeeper.repo import DrillRecord, Repository, drills
from dbkeeper.storage.local import LocalStore
from dbkeeper.web.snapshot import SnapshotRepository, Snapshots
from history import NOW, Template, at, daily, plant, real_backup, small_app


def world(tmp_path: Path) -> tuple[LocalStore, Template]:
    store = LocalStore(tmp_path / "backups")
    template = real_backup(LocalStore(tmp_path / "scratch"), small_app(tmp_path / "app.db"), at("2026-11-20"))
    daily(store, template, "2026-11-27", 6)
    daily(store, template, "2026-11-26", 3, database="other")
    plant(store, template, at("2026-11-25"), source="second")
    plant(store, template, at("2026-11-24"), database="casino", source="second")
    return store, template


def test_scans_and_status_match_the_store(tmp_path: Path) -> None:
    store, _template = world(tmp_path)
    repo = Repository(store)
    snap = Snapshots(repo, timedelta(hours=1)).refresh()
    cached = SnapshotRepository(repo, snap)
    for source, database in [(None, None), ("app", None), ("second", None), (None, "casino"), ("app", "other")]:
        fresh = repo.scan(NOW, source=source, database=database)
        assert [e.name for e in cached.scan(NOW, source=source, database=database).entries] == [
            e.name for e in fresh.entries
        ]
    a = status.check(cached, max_age=timedelta(hours=26), drill_log_path=tmp_path / "none.md", now=NOW).to_json()
    b = status.check(repo, max_age=timedelta(hours=26), drill_log_path=tmp_path / "none.md", now=NOW).to_json()
    assert a == b
    assert metrics.render(metrics.collect(cached, tmp_path / "none.md", NOW)) == metrics.render(
        metrics.collect(repo, tmp_path / "none.md", NOW)
    )


def test_drill_records_are_read_with_the_snapshot_not_per_request(tmp_path: Path) -> None:
    """On S3 every record is a GET: pages answer from the snapshot's read, and see a new record after a refresh."""
    store, _template = world(tmp_path)
    repo = Repository(store)
    drills.put(repo.store, DrillRecord("app", "app", "2026-11-27T04:00:00Z", "PASS"))
    snapshots = Snapshots(repo, timedelta(hours=1))
    cached = SnapshotRepository(repo, snapshots.refresh())
    drills.put(repo.store, DrillRecord("second", "second", "2026-11-27T05:00:00Z", "FAIL"))
    assert [r.source_id for r in cached.drill_records().records] == ["app"]
    assert cached.drill_records("second").records == [] and cached.drill_records("app").refused == 0
    cached = SnapshotRepository(repo, snapshots.refresh())
    assert [r.source_id for r in cached.drill_records().records] == ["app", "second"]
    assert [r.result for r in cached.drill_records("second").records] == ["FAIL"]


def test_a_stale_snapshot_is_read_again_in_the_background(tmp_path: Path) -> None:
    store, template = world(tmp_path)
    snaps = Snapshots(Repository(store), timedelta(0))
    first = snaps.get()
    count = len(first.catalog.entries)
    plant(store, template, datetime.now(UTC).replace(microsecond=0))
    deadline = time.monotonic() + 30
    while len(snaps.get().catalog.entries) == count:  # each get() of a stale snapshot starts a read
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert len(snaps.get().catalog.entries) == count + 1


def test_a_fresh_snapshot_is_kept_until_refreshed(tmp_path: Path) -> None:
    store, template = world(tmp_path)
    snaps = Snapshots(Repository(store), timedelta(hours=1))
    first = snaps.get()
    plant(store, template, datetime.now(UTC).replace(microsecond=0))
    time.sleep(0.2)
    assert snaps.get() is first
    assert len(snaps.refresh().catalog.entries) == len(first.catalog.entries) + 1
    assert snaps.get() is not first


def test_a_slow_store_is_read_again_only_after_a_gap(tmp_path: Path) -> None:
    store, _template = world(tmp_path)
    snap = Snapshots(Repository(store), timedelta(0)).refresh()
    snap.seconds = 10.0  # a read that took 10 s ...
    ended = snap.taken + timedelta(seconds=10)
    assert not snap.due(ended + timedelta(seconds=39), timedelta(0))  # ... is not followed by another for 40 s
    assert snap.due(ended + timedelta(seconds=40), timedelta(0))
    assert not snap.due(ended + timedelta(seconds=40), timedelta(minutes=5))  # nor before --refresh
