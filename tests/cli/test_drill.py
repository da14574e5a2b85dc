"""dbkeeper drill on the command line: options, [drill] config keys, and what bad input gets (exit 2, no trace)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helpers import backup_at, cli, cli_json, make_sqlite_app, run_dbkeeper


@pytest.fixture(autouse=True)
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    app = make_sqlite_app(tmp_path / "app.db", users=50, sessions=5)
    backup_at(str(app), tmp_path / "backups", datetime.now(UTC).replace(microsecond=0) - timedelta(days=3), "app")
    return tmp_path / "backups"


def test_config_drill_keys_are_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "checks.sql").write_text("-- expect: users = 50\nSELECT count(*) FROM users;\n")
    (tmp_path / "dbkeeper.toml").write_text(
        '[drill]\nmax_age = "2d"\nsmoke = "checks.sql"\nlog = "ops/drills.md"\ntarget = "."\n'
    )
    code, doc = cli_json(capsys, "drill")
    assert code == 3 and doc["max_age"] == "2d" and doc["log"] == "ops/drills.md"  # the only backup is 3d old
    code, doc = cli_json(capsys, "drill", "--max-age", "4d")  # the command line wins
    assert code == 0, doc
    assert [c["name"] for c in doc["drills"][0]["checks"]] == ["backup", "restore", "smoke 1", "cleanup"]
    assert doc["drills"][0]["target"].startswith("app_drill_")  # in the target directory "."
    assert (tmp_path / "ops" / "drills.md").read_text().count("| app |") == 2


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--max-age", "week"], "dbkeeper: error: --max-age 'week' is not a duration"),
        (["--smoke", "missing.sql"], "dbkeeper: error: cannot read the smoke file missing.sql"),
        (["--smoke", "bad.sql"], "dbkeeper: error: bad.sql:2: cannot read the expectation 'rows at least 5'"),
        (["--seed", "x"], "dbkeeper: error: argument --seed: invalid int value: 'x'"),
    ],
)
def test_bad_options_are_usage_errors_before_anything_runs(tmp_path: Path, argv: list[str], message: str) -> None:
    (tmp_path / "bad.sql").write_text("SELECT 1;\n-- expect: rows at least 5\nSELECT 2;\n")
    result = run_dbkeeper("drill", *argv)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "docs").exists()  # nothing was drilled or logged


def test_bad_config_value_names_the_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dbkeeper.toml").write_text("[drill]\nmax_age = 7\n")
    code, _, err = cli(capsys, "drill")
    assert code == 2 and 'dbkeeper.toml: drill.max_age: must be a string such as "7d"' in err
    (tmp_path / "dbkeeper.toml").write_text('[drill]\nmax_age = "7 dayz"\n')
    code, _, err = cli(capsys, "drill")
    assert code == 2 and "drill.max_age: max_age '7 dayz' is not a duration" in err


def test_text_output_as_a_real_process(tmp_path: Path) -> None:
    result = run_dbkeeper("drill", "--seed", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("PASS app in ")
    assert [line.split()[:2] for line in lines[1:4]] == [["OK", "backup"], ["OK", "restore"], ["OK", "cleanup"]]
    assert lines[-1] == "1 of 1 drill(s) passed (max-age 7d, seed 1); logged to docs/DR_DRILL_LOG.md"
    assert result.stderr == ""
