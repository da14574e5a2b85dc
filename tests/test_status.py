"""status: OK, WARNING or CRITICAL per database from the store and the drill log, with Nagios's exit codes
(0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)."""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helpers import backup_at, cli, cli_json, make_sqlite_app, run_dbkeeper
from pg import PASSWORD, Cluster, PgDb


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
    assert code == 0
    assert re.fullmatch(r"OK app: last backup 3h( 0m)? ago \(\d+\.\d kB, unverified\), never drilled\n", out), out
    assert cli(capsys, "drill")[0] == 0
    code, out, _ = cli(capsys, "status")
    assert code == 0
    assert re.fullmatch(r"OK app: last backup 3h( 0m)? ago \(.+, drilled\), last drill PASS \ds ago\n", out), out


def test_backup_older_than_max_age_is_critical(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _backup(tmp_path, 30)
    code, out, _ = cli(capsys, "status")
    assert code == 2
    assert out.startswith("CRITICAL app: newest backup older than 26h; last backup 30h ago (")
    assert cli(capsys, "status", "--max-age", "2d")[0] == 0
    _backup(tmp_path, 5 / 3600)  # five seconds ago
    assert cli(capsys, "status")[0] == 0
    code, out, _ = cli(capsys, "status", "--max-age", "1s")
    assert code == 2 and re.match(r"CRITICAL app: newest backup older than 1s; last backup [5-9]s ago \(", out), out


def test_last_drill_failed_is_critical_until_one_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _backup(tmp_path, 1)
    (tmp_path / "smoke.sql").write_text("-- expect: rows >= 1000\nSELECT count(*) FROM users;\n")
    assert cli(capsys, "drill", "--smoke", "smoke.sql")[0] == 3
    code, out, _ = cli(capsys, "status")
    assert code == 2
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
    assert code == 2 and not doc["ok"]
    [db] = doc["databases"]
    assert db["state"] == "CRITICAL" and db["problems"] == [
        f"1 failed backup(s) since the last good one ({newer}: no manifest: the backup never completed)"
    ]
    assert [b["name"] for b in db["broken_since"]] == [newer]


def test_json_document_and_one_line_per_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _backup(tmp_path, 2, "app")
    _backup(tmp_path, 50, "shop")
    code, doc = cli_json(capsys, "status")
    assert code == 2 and doc["max_age"] == "26h" and doc["store"] == "backups"
    app, shop = doc["databases"]
    assert app["state"] == "OK" and app["newest_backup"]["name"] == good
    assert 2 * 3600 <= app["newest_backup"]["age_seconds"] < 2 * 3600 + 60
    assert app["last_drill"] is None and app["line"].startswith("OK app: last backup 2h ago")
    assert app["newest_backup"]["state"] == "unverified"
    assert app["newest_backup"]["checked"] == ["manifest", "size", "sidecar"]
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


def test_empty_store_is_critical_a_missing_one_unknown(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_dbkeeper("status", "--store", str(tmp_path / "empty"))
    assert result.returncode == 2 and result.stdout == f"CRITICAL: no backups in {tmp_path / 'empty'}\n"
    missing = run_dbkeeper("status", "--store", str(tmp_path / "nothing"))
    assert missing.returncode == 3 and missing.stdout == f"UNKNOWN: store {tmp_path / 'nothing'} does not exist\n"
    assert "Try: check --store" in missing.stderr and "Traceback" not in missing.stderr
    bad = run_dbkeeper("status", "--max-age", "26")
    assert bad.returncode == 3 and "Traceback" not in bad.stderr
    assert bad.stdout == "UNKNOWN: --max-age '26' is not a duration\n"
    assert bad.stderr.splitlines() == [
        "dbkeeper: error: --max-age '26' is not a duration",
        "  Try: write a number and a unit: 90m, 26h, 7d, 2w (s, m, h, d, w; parts may be combined: 1d12h)",
    ]


def _age_database(pg: Cluster, name: str, hours: float) -> None:
    """Make ``name``'s files look ``hours`` old, as a restore killed that long ago would have left them."""
    oid = pg.psql(f"SELECT oid FROM pg_database WHERE datname = '{name}'").strip()
    old = time.time() - hours * 3600
    os.utime(pg.datadir / "base" / oid / "PG_VERSION", (old, old))


def test_what_killed_restores_left_on_a_sources_server_is_a_warning_with_its_fix(
    tmp_path: Path, pgdb: PgDb, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pg, name = pgdb
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    _backup(tmp_path, 3)
    config = f'[[sources]]\nname = "app"\nurl = "sqlite:///app.db"\n[[sources]]\nname = "shop"\nurl = "{pgdb.url}"\n'
    (tmp_path / "dbkeeper.toml").write_text(config)
    before = cli_json(capsys, "status")[1]
    gone = f"{name[:30]}x"  # the target a killed --drop-existing restore renamed aside, and never replaced
    temp, aside = f"{name[:40]}_dbkeeper_tmp_0badc0de", f"{gone}_dbkeeper_old_0badc0de"
    pg.create_db(temp)
    pg.create_db(aside)
    try:
        code, doc = cli_json(capsys, "status")
        mine = {lo["name"]: lo for lo in doc["server_leftovers"]}
        assert code == 1 and doc["state"] == "WARNING" and set(mine) - {lo["name"] for lo in before["server_leftovers"]}
        assert aside in mine and temp not in mine  # a temporary database younger than an hour may be starting
        assert mine[aside]["target"] is None and f'RENAME TO "{gone}"' in mine[aside]["describe"]
        _age_database(pg, temp, 2)
        code, out, _ = cli(capsys, "status")
        lines = out.splitlines()
        assert code == 1 and lines[0].startswith("OK app: last backup")
        assert (
            f"WARNING restore leftover: replaced database {aside} on {pg.host}:{pg.port}: the only copy of"
            f' {gone}, whose replacement never arrived; put it back with ALTER DATABASE "{aside}" RENAME TO'
            f' "{gone}" (and WITH ALLOW_CONNECTIONS true); rename it back (above), then `dbkeeper cleanup`'
            " for what else that restore left"
        ) in lines
        assert (
            f"WARNING restore leftover: temporary database {temp} on {pg.host}:{pg.port}; `dbkeeper cleanup` drops it"
            in lines
        )
        code, out, _ = cli(capsys, "cleanup")  # what the line says: it drops the temporary, keeps the other
        assert f"removed      temporary database {temp}" in out
        left = {lo["name"] for lo in cli_json(capsys, "status")[1]["server_leftovers"]}
        assert aside in left and temp not in left
    finally:
        pg.drop_db(temp)
        pg.drop_db(aside)
    assert {lo["name"] for lo in cli_json(capsys, "status")[1]["server_leftovers"]} == {
        lo["name"] for lo in before["server_leftovers"]
    }


def test_a_server_that_cannot_be_asked_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _backup(tmp_path, 3)
    (tmp_path / "dbkeeper.toml").write_text('[[sources]]\nurl = "postgresql://app:s3cret@127.0.0.1:1/shop"\n')
    code, out, _ = cli(capsys, "status")
    assert code == 1 and out.startswith("OK app: last backup")
    [line] = [line for line in out.splitlines() if line.startswith("WARNING")]
    assert line.startswith("WARNING postgresql://app:***@127.0.0.1:1/shop: cannot look for restores' leftovers")
    assert "s3cret" not in out


def test_a_role_that_may_not_read_the_servers_files_still_sees_what_killed_restores_left(
    tmp_path: Path, pgdb: PgDb, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The application's own role (no superuser, no pg_stat_file) is what a config usually names: the leftovers are
    found all the same, their age unknown (a temporary database is then reported, with how to remove it anyway)."""
    pg, name = pgdb
    role = f"app_{name[-8:]}"
    pg.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    temp, aside = f"{name[:40]}_dbkeeper_tmp_0badc0de", f"{name[:30]}x_dbkeeper_old_0badc0de"
    pg.create_db(temp)
    pg.create_db(aside)
    try:
        monkeypatch.setenv("PGPASSWORD", PASSWORD)
        _backup(tmp_path, 3)
        url = pg.url(name, user=role)
        (tmp_path / "dbkeeper.toml").write_text(
            f'[[sources]]\nname = "app"\nurl = "sqlite:///app.db"\n[[sources]]\nurl = "{url}"\n'
        )
        code, doc = cli_json(capsys, "status")
        assert code == 1 and doc["server_errors"] == [], doc["server_errors"]
        found = {lo["name"]: lo for lo in doc["server_leftovers"]}
        assert found[temp]["created_at"] is None and "--older-than 0s" in found[temp]["fix"]
        assert found[aside]["target"] is None
    finally:
        pg.drop_db(temp)
        pg.drop_db(aside)
        pg.psql(f"DROP ROLE {role}")


def test_nagios_exit_codes_ok_warning_critical_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN: what Nagios, Icinga and Sensu read from a check's exit status."""
    name = _backup(tmp_path, 1)
    assert cli(capsys, "status")[0] == 0
    future = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    backup_at(str(tmp_path / "app.db"), tmp_path / "backups", future, name="app")  # a skewed clock: WARNING
    code, doc = cli_json(capsys, "status")
    assert code == 1 and doc["state"] == "WARNING" and doc["format_version"] == 1
    code, _, _ = cli(capsys, "status", "--max-age", "1s")
    assert code == 2
    bad_option = run_dbkeeper("status", "--no-such-option", cwd=tmp_path)
    assert bad_option.returncode == 3 and "Traceback" not in bad_option.stderr
    code, doc = cli_json(capsys, "status", "--store", "missing")
    assert code == 3 and doc["state"] == "UNKNOWN" and "does not exist" in doc["error"]
    # damage listing can see (a size that differs from the manifest) is CRITICAL, not OK
    data = tmp_path / "backups" / name
    data.write_bytes(data.read_bytes() + b"x")
    code, out, _ = cli(capsys, "status", "--max-age", "3d")
    assert code == 2 and out.startswith("CRITICAL app: ") and ("no good backup" in out or "failed backup(s)" in out)
