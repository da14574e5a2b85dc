from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbkeeper.engines.postgres.conn import PgConn
from dbkeeper.engines.postgres.psql import query
from dbkeeper.pitr import ledger
from dbkeeper.pitr.ledger import LedgerRow, judge
from helpers import cli_json
from pg import PgDb

T = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
EVERY = timedelta(seconds=10)


def _rows(*seconds_before: float) -> list[LedgerRow]:
    return [LedgerRow(i, T - timedelta(seconds=s), EVERY) for i, s in enumerate(sorted(seconds_before, reverse=True))]


def test_a_recovery_that_reached_the_target_is_proven() -> None:
    verdict = judge(_rows(35, 25, 15, 5), T)
    assert verdict.ok and verdict.newest is not None and verdict.newest.at == T - timedelta(seconds=5)


def test_a_row_after_the_target_means_recovery_went_past_it() -> None:
    verdict = judge([*_rows(15, 5), LedgerRow(9, T + timedelta(milliseconds=1), EVERY)], T)
    assert not verdict.ok and "past the target" in verdict.reason


def test_a_newest_row_too_long_before_the_target_means_it_stopped_early() -> None:
    verdict = judge(_rows(60, 50, 40), T)
    assert not verdict.ok and "stopped early" in verdict.reason


def test_no_ledger_proves_nothing() -> None:
    assert not judge([], T).ok
    assert "dbkeeper ledger" in judge([], T, exists=False).reason


@given(st.lists(st.floats(min_value=-100, max_value=100, allow_nan=False), max_size=30))
def test_judge_never_passes_a_row_after_the_target(offsets: list[float]) -> None:
    rows = sorted((LedgerRow(i, T + timedelta(seconds=o), EVERY) for i, o in enumerate(offsets)), key=lambda r: r.at)
    verdict = judge(rows, T)
    if verdict.ok:
        assert all(r.at <= T for r in rows) and rows and T - rows[-1].at <= timedelta(seconds=20)


def test_the_ledger_command_writes_rows_the_drill_can_read(
    pgdb: PgDb, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", pgdb.cluster.env()["PGPASSWORD"])
    code, first = cli_json(capsys, "ledger", pgdb.url, "--once", "--every", "2s")
    assert code == 0
    code, second = cli_json(capsys, "ledger", pgdb.url, "--once", "--every", "2s")
    assert code == 0 and second["id"] > first["id"]
    conn = PgConn.from_url(pgdb.url)
    rows, exists = ledger.rows_near(lambda sql: query(conn, sql), datetime.now(UTC))
    assert exists and [r.id for r in rows] == [first["id"], second["id"]]
    assert rows[0].every == timedelta(seconds=2)
    assert judge(rows, rows[-1].at + timedelta(seconds=1)).ok


def test_without_source_the_ledger_writes_into_the_pitr_sources_entry(
    pgdb: PgDb, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the ledger unit `schedule install` writes runs: `dbkeeper --config C ledger`, no SOURCE."""
    monkeypatch.setenv("PGPASSWORD", pgdb.cluster.env()["PGPASSWORD"])
    config = tmp_path / "dbkeeper.toml"
    config.write_text(f'[[sources]]\nname = "casino-pg"\nurl = "{pgdb.url}"\n[pitr]\nsource = "casino-pg"\n')
    code, row = cli_json(capsys, "--config", str(config), "ledger", "--once")
    assert code == 0
    rows, exists = ledger.rows_near(lambda sql: query(PgConn.from_url(pgdb.url), sql), datetime.now(UTC))
    assert exists and [r.id for r in rows] == [row["id"]]
    # A [pitr] source with no [[sources]] entry of that name: what to add, not a traceback.
    config.write_text('[pitr]\nsource = "casino-pg"\n')
    code, doc = cli_json(capsys, "--config", str(config), "ledger", "--once")
    assert code == 2 and "add a [[sources]] entry named 'casino-pg'" in doc["hint"]
    config.write_text("")
    code, doc = cli_json(capsys, "--config", str(config), "ledger", "--once")
    assert code == 2 and doc["error"] == "no source to write the ledger into"


def test_bad_ledger_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = cli_json(capsys, "ledger", "sqlite:///x.db", "--once")
    assert code == 2 and "no PostgreSQL source" in doc["error"]
    code, doc = cli_json(capsys, "ledger", "postgresql://h/db", "--once", "--every", "100ms")
    assert code == 2


def test_the_running_ledger_waits_for_a_database_that_is_down_and_stops_cleanly_on_sigterm(
    pgdb: PgDb, tmp_path: Path
) -> None:
    """As its systemd unit runs it: a database not up yet is tried again each interval (no exit for systemd's start
    limit to count), and SIGTERM ends it with exit 0 (a stop is not a failure)."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    cluster, name = pgdb

    def rows() -> int:
        found = cluster.psql("SELECT to_regclass('dbkeeper.ledger') IS NOT NULL", db=name).strip() == "t"
        return int(cluster.psql("SELECT count(*) FROM dbkeeper.ledger", db=name).strip()) if found else 0

    for url, writes in ((f"postgresql://postgres@127.0.0.1:{closed_port}/postgres", False), (pgdb.url, True)):
        err_file = tmp_path / f"stderr-{writes}"
        with err_file.open("w") as err_out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dbkeeper", "ledger", url, "--every", "1s"],
                env={**os.environ, **pgdb.cluster.env()},
                stderr=err_out,
                cwd=tmp_path,
            )
        try:
            # Until it has written two rows, or said twice that it tries again (however slow this host is).
            deadline = time.monotonic() + 60
            while (rows() if writes else err_file.read_text().count("trying again in 1s")) < 2:
                assert proc.poll() is None, err_file.read_text()  # it never gives up
                assert time.monotonic() < deadline, err_file.read_text()
                time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        finally:
            proc.kill()
        err = err_file.read_text()
        assert proc.returncode == 0, err
        assert ("trying again in 1s" in err) != writes, err
