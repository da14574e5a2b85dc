"""status: OK or CRITICAL per database from the store and the drill log; exit 3 when any is critical."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helpers import backup_at, cli, cli_json, make_sqlite_app, run_dbkeeper


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _backup(tmp_path: Path, hours_ago: float, name: str = "app") -> str:
    source = tmp_path / f"{name}.db"
    if not source.exists():
        make_sqlite_app(source, users=100, sessions=10)
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=hours_ago)
    return backup_at(str(source), tmp_path / "backups", when, name=name)


def test_fresh_backup_and_passed_drill_is_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _backup(tmp_path, 3)
    code, out, _ = cli(capsys, "status")
    assert code == 0 and re.fullmatch(r"OK app: last backup 3h( 0m)? ago \(\d+\.\d kB\), never drilled\n", out), out
    assert cli(capsys, "drill")[0] == 0
    code, out, _ = cli(capsys, "status")
    assert code == 0 and re.fullmatch(r"OK app: last backup 3h( 0m)? ago \(.+\), last drill PASS \ds ago\n", out), out


def test_backup_older_than_max_age_is_critical(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _backup(tmp_path, 30)
    code, out, _ = cli(capsys, "status")
    assert code == 3
    assert out.startswith("CRITICAL app: newest backup older than 26h; last backup 30h ago (")
    assert cli(capsys, "status", "--max-age", "2d")[0] == 0
    _backup(tmp_path, 5 / 3600)  # five seconds ago
    assert cli(capsys, "status")[0] == 0
    code, out, _ = cli(capsys, "status", "--max-age", "1s")
    assert code == 3 and re.match(r"CRITICAL app: newest backup older than 1s; last backup [5-9]s ago \(", out), out


def test_last_drill_failed_is_critical_until_one_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _backup(tmp_path, 1)
    (tmp_path / "smoke.sql").write_text("-- expect: rows >= 1000\nSELECT count(*) FROM users;\n")
    assert cli(capsys, "drill", "--smoke", "smoke.sql")[0] == 3
    code, out, _ = cli(capsys, "status")
    assert code == 3
    assert out.startswith(
        "CRITICAL app: last drill failed (smoke 1: SELECT count(*) FROM users -> 100, expected rows >= 1000);"
        " last backup 1h ago ("
    )
    assert re.search(r"last drill FAIL [0-2]s ago$", out.rstrip())  # the drill took a moment
    assert cli(capsys, "drill")[0] == 0
    assert cli(capsys, "status")[0] == 0


def test_broken_backup_newer_than_the_good_one_is_a_failing_nightly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _backup(tmp_path, 30)
    (tmp_path / "backups" / "app_20000101_000000.db.gz").write_bytes(b"old and broken: does not count")
    assert cli(capsys, "status", "--max-age", "2d")[0] == 0
    newer = (datetime.now(UTC) - timedelta(hours=6)).strftime("app_%Y%m%d_%H%M%S.db.gz")
    (tmp_path / "backups" / newer).write_bytes(b"a nightly that died before its manifest")
    code, doc = cli_json(capsys, "status", "--max-age", "2d")
    assert code == 3 and not doc["ok"]
    [db] = doc["databases"]
    assert db["state"] == "CRITICAL" and db["problems"] == [
        f"1 failed backup(s) since the last good one ({newer}: no manifest: the backup never completed)"
    ]
    assert [b["name"] for b in db["broken_since"]] == [newer]


def test_json_document_and_one_line_per_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _backup(tmp_path, 2, "app")
    _backup(tmp_path, 50, "shop")
    code, doc = cli_json(capsys, "status")
    assert code == 3 and doc["max_age"] == "26h" and doc["store"] == "backups"
    app, shop = doc["databases"]
    assert app["state"] == "OK" and app["newest_backup"]["name"] == good
    assert 2 * 3600 <= app["newest_backup"]["age_seconds"] < 2 * 3600 + 60
    assert app["last_drill"] is None and app["line"].startswith("OK app: last backup 2h ago")
    assert shop["state"] == "CRITICAL" and shop["problems"] == ["newest backup older than 26h"]
    code, out, _ = cli(capsys, "status")
    assert [line.split(":")[0] for line in out.splitlines()] == ["OK app", "CRITICAL shop"]
    code, out, _ = cli(capsys, "status", "--database", "app")
    assert code == 0 and out.startswith("OK app:")


def test_drill_log_option_and_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _backup(tmp_path, 1)
    assert cli(capsys, "drill", "--log", "elsewhere.md")[0] == 0
    # The store keeps the drill too: status finds it without the log ...
    assert "last drill PASS" in cli(capsys, "status")[1]
    # ... and without the store's record, only through the log.
    shutil.rmtree(tmp_path / "backups" / "drills")
    assert "never drilled" in cli(capsys, "status")[1]
    assert "last drill PASS" in cli(capsys, "status", "--drill-log", "elsewhere.md")[1]
    (tmp_path / "dbkeeper.toml").write_text('[drill]\nlog = "elsewhere.md"\n')
    assert "last drill PASS" in cli(capsys, "status")[1]


def test_empty_store_is_critical_as_a_real_process(tmp_path: Path) -> None:
    result = run_dbkeeper("status", "--store", str(tmp_path / "nothing"))
    assert result.returncode == 3 and result.stdout == f"CRITICAL: no backups in {tmp_path / 'nothing'}\n"
    bad = run_dbkeeper("status", "--max-age", "26")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.splitlines() == [
        "dbkeeper: error: --max-age '26' is not a duration",
        "  Try: write a number and a unit: 90m, 26h, 7d, 2w (s, m, h, d, w; parts may be combined: 1d12h)",
    ]
