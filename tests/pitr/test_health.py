"""Every source's archive health at once (pitr.health.survey), as status, the metrics and the dashboard read it:
one archive that does not read is that source's CRITICAL, never everyone's failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from dbkeeper import metrics, status
from dbkeeper.pitr.archive import Cluster, WalArchive
from dbkeeper.pitr.health import survey
from dbkeeper.repo import Repository
from dbkeeper.storage.local import LocalStore
from walgen import SYSID, segment, write

CLUSTER = Cluster(SYSID, 15)


def test_a_damaged_or_planted_archive_is_its_sources_problem_alone(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = LocalStore(root)
    wal = tmp_path / "pg_wal"
    wal.mkdir()
    for source in ("good", "bad"):
        WalArchive(store, source).push(
            Path(write(wal, "000000010000000000000003", segment("000000010000000000000003"))), CLUSTER
        )
    (root / "pitr" / "bad" / CLUSTER.archive_id / "archive.json").write_text("{ not json")
    planted = root / "pitr" / "bad id" / "archives"  # no source id names this directory
    planted.mkdir(parents=True)
    (planted / CLUSTER.archive_id).write_bytes(b"")

    found = survey(store, now=datetime.now(UTC))
    assert [h.source_id for h in found.found] == ["good"]
    assert [source for source, _why in found.errors] == ["bad"] and "damaged" in found.errors[0][1]

    report = status.check(
        Repository(store), max_age=timedelta(hours=26), drill_log_path=tmp_path / "drills.md", now=datetime.now(UTC),
        pitr=found,
    )  # fmt: skip
    assert report.state == status.CRITICAL and [p.health.source_id for p in report.pitr] == ["good"]
    [line] = report.pitr_error_lines()
    assert line.startswith("CRITICAL bad WAL: its archive does not read: ")
    assert report.to_json()["pitr_errors"][0]["source"] == "bad"
    text = metrics.render(metrics.collect(Repository(store), tmp_path / "drills.md", pitr=found))
    assert 'dbkeeper_wal_archive_unreadable{source="bad"} 1' in text
    assert f'dbkeeper_wal_last_archived_timestamp_seconds{{source="good",archive_id="{CLUSTER.archive_id}"}}' in text
