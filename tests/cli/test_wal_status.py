"""status and the metrics for a PITR source, on a real cluster archiving with wal-push: the newest archived WAL's
age, the .ready backlog (from the data directory or the WAL daemon), gaps, and the last PITR drill."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from archiving import SOURCE, ArchivingCluster, archiving_cluster
from conftest import _pg15_bindir
from dbkeeper import drill_log, metrics
from dbkeeper.pitr.archive import WalArchive, cluster_of
from dbkeeper.repo import Repository
from dbkeeper.storage import open_store
from helpers import check_json as check
from pitr_harness import basebackup


def _status(ac: ArchivingCluster, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    log = ac.home / "drills.md"
    result = subprocess.run(
        ac.dbkeeper_argv("status", "--json", "--drill-log", str(log), *args), capture_output=True, text=True
    )
    assert result.returncode in (0, 1, 2), result.stderr  # Nagios: OK, WARNING, CRITICAL
    return result.returncode, json.loads(result.stdout)


def _bindir() -> Path:
    found = _pg15_bindir()
    assert found is not None
    return found


def test_status_and_metrics_of_a_pitr_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with archiving_cluster(_bindir()) as ac:
        early = ac.switches(2)
        ac.wait_archived(early[-1])
        # WAL without a base backup restores to no point at all: CRITICAL, as a database with no backup is.
        code, doc = _status(ac)
        assert code == 2 and doc["pitr"][0]["problems"] == [
            "no good base backup: no point-in-time restore is possible (run dbkeeper basebackup)"
        ], doc["pitr"]
        assert "no PITR window (no good base backup)" in doc["pitr"][0]["line"]
        assert doc["pitr"][0]["window"]["end"] is None and doc["pitr"][0]["newest_base_backup"] is None
        base = basebackup(ac)
        time.sleep(1)  # the window opens at the first whole second after the backup ended: segments after it
        closed = ac.switches(4)
        ac.wait_archived(closed[-1])
        code, doc = _status(ac)
        assert code == 0, doc
        [pitr] = doc["pitr"]
        assert pitr["state"] == "OK" and pitr["source"] == SOURCE
        assert pitr["last_archived"]["age_seconds"] < 60 and pitr["gaps"]["lost"] == []
        assert pitr["backlog"] is None  # no data directory given, no daemon: unknown, not zero
        assert pitr["newest_base_backup"]["id"] == base["id"] and pitr["newest_base_backup"]["age_seconds"] < 120
        assert "newest base backup " in pitr["line"] and pitr["window"]["end"] is not None
        check(doc, "status")  # docs/json/status.schema.json describes the PITR entries
        # Older than [pitr] max_base_age: a WARNING (restores replay ever more WAL).
        config = ac.config.read_text()
        ac.config.write_text(config + 'max_base_age = "1s"\n')  # the [pitr] table is the file's last
        time.sleep(1.1)
        code, doc = _status(ac)
        assert code == 1 and doc["pitr"][0]["warnings"] == ["newest base backup older than 1s"], doc["pitr"]
        ac.config.write_text(config)
        # The data directory's backlog, once archive_command stops archiving.
        ac.cluster.psql("ALTER SYSTEM SET archive_command = ''")
        ac.cluster.psql("SELECT pg_reload_conf()")
        time.sleep(1)
        waiting = ac.switches(2)
        time.sleep(2.2)
        code, doc = _status(ac, "--data-dir", str(ac.cluster.datadir), "--max-wal-age", "2s")
        backlog = doc["pitr"][0]["backlog"]
        assert backlog["files"] >= 2 and backlog["bytes"] >= 2 * (16 << 20) and backlog["from"] == "data directory"
        assert code == 1 and doc["pitr"][0]["state"] == "WARNING"
        assert any("waiting to be archived" in w for w in doc["pitr"][0]["warnings"])
        assert any("newest archived WAL older than" in w for w in doc["pitr"][0]["warnings"])
        # The daemon's own count, when the data directory is not given (it pushes them: the backlog shrinks
        # only when PostgreSQL's archive_command says so, so they stay .ready here).
        with ac.daemon():
            deadline = time.monotonic() + 30
            while True:
                code, doc = _status(ac)
                b = doc["pitr"][0]["backlog"]
                if b is not None and b["files"] >= 2:
                    break
                assert time.monotonic() < deadline, doc
                time.sleep(0.5)
            assert b["from"] == "wal-daemon"
            # Metrics: the same facts (the daemon's spool found as every command finds it).
            monkeypatch.setenv("DBKEEPER_STATE_DIR", str(ac.state))
            repo = Repository(open_store(ac.store))
            text = metrics.render(metrics.collect(repo, ac.home / "drills.md"))
        samples = {
            (s.name, s.labels.get("state", "")): s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.labels.get("source") == SOURCE
        }
        assert abs(samples[("dbkeeper_wal_last_archived_timestamp_seconds", "")] - time.time()) < 120
        assert samples[("dbkeeper_wal_archive_backlog_files", "")] >= 2
        assert samples[("dbkeeper_wal_gap_segments", "lost")] == 0
        assert abs(samples[("dbkeeper_pitr_base_backup_last_seconds", "")] - time.time()) < 300
        assert samples[("dbkeeper_pitr_window_end_seconds", "")] > samples[("dbkeeper_pitr_window_start_seconds", "")]
        # A segment deleted from the middle: CRITICAL, and the metric counts it.
        cluster = cluster_of(ac.cluster.datadir)
        assert cluster is not None
        arch = WalArchive(open_store(ac.store), SOURCE)
        arch.store.delete(next(o.object for o in arch.files(cluster.archive_id) if o.name.text == closed[1]))
        time.sleep(1.1)
        code, doc = _status(ac, "--max-wal-age", "1s")
        assert code == 2 and doc["pitr"][0]["state"] == "CRITICAL" and doc["state"] == "CRITICAL", (closed, doc["pitr"])
        assert doc["pitr"][0]["gaps"]["lost"] == [closed[1]]
        # The last PITR drill, as the drill log names it.
        drill_log.append(
            ac.home / "drills.md", drill_log.Row(datetime.now(UTC), f"{SOURCE} (PITR)", drill_log.FAIL, anomalies="x")
        )
        _code, doc = _status(ac, "--max-wal-age", "1s")
        assert doc["pitr"][0]["last_pitr_drill"]["result"] == "FAIL"
        assert "last PITR drill failed" in doc["pitr"][0]["warnings"]
        text_out = subprocess.run(
            ac.dbkeeper_argv("status", "--max-wal-age", "1s", "--drill-log", str(ac.home / "drills.md")),
            capture_output=True,
            text=True,
        )
        assert f"CRITICAL {SOURCE} WAL (" in text_out.stdout
        assert waiting
