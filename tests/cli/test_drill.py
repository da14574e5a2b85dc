"""dbkeeper drill on the command line: options, [drill] config keys, and what bad input gets (exit 2, no trace)."""

from __future__ import annotations

import json
import os
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
    assert lines[-1] == "1 of 1 drill(s) passed (max-age 7d, seed 1); logged to " + os.path.join(
        os.environ["DBKEEPER_STATE_DIR"], "DR_DRILL_LOG.md"
    )
    assert result.stderr == ""


def test_status_on_another_host_sees_the_drill_through_the_store(tmp_path: Path) -> None:
    """Two hosts share only the store: the drill host's state directory, home and working directory are its own,
    and the monitoring host, fresh, still knows the last drill."""
    store = str(tmp_path / "backups")
    drill_host, monitor = tmp_path / "ops1", tmp_path / "mon1"
    for host in (drill_host, monitor):
        (host / "home").mkdir(parents=True)

    def env(host: Path) -> dict[str, str]:
        return {"HOME": str(host / "home"), "DBKEEPER_STATE_DIR": str(host / "state"), "DBKEEPER_STORE": store}

    result = run_dbkeeper("drill", "--seed", "1", env=env(drill_host), cwd=drill_host)
    assert result.returncode == 0, result.stderr
    assert (drill_host / "state" / "DR_DRILL_LOG.md").read_text().count("| app |") == 1
    [record] = (tmp_path / "backups" / "drills" / "app").iterdir()
    assert json.loads(record.read_text())["result"] == "PASS"

    result = run_dbkeeper("status", "--max-age", "4d", "--json", env=env(monitor), cwd=monitor)
    assert result.returncode == 0, result.stdout + result.stderr
    [app] = json.loads(result.stdout)["databases"]
    assert app["last_drill"]["result"] == "PASS" and app["last_drill"]["backup"].startswith("app/app_")
    assert not (monitor / "state").exists() or not (monitor / "state" / "DR_DRILL_LOG.md").exists()

    # A failing drill on a third host reaches the monitor the same way: its last drill is now the failed one.
    third = tmp_path / "ops2"
    (third / "home").mkdir(parents=True)
    (third / "smoke.sql").write_text("-- expect: rows >= 1000\nSELECT count(*) FROM users;\n")
    result = run_dbkeeper("drill", "--smoke", "smoke.sql", env=env(third), cwd=third)
    assert result.returncode == 3
    result = run_dbkeeper("status", "--max-age", "4d", env=env(monitor), cwd=monitor)
    # CRITICAL, in Nagios's code
    assert result.returncode == 2 and result.stdout.startswith("CRITICAL app: last drill failed (smoke 1:")


def test_a_store_that_takes_no_drill_record_still_drills(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "backups" / "drills").write_text("a file where the directory would go")
    code, doc = cli_json(capsys, "drill")
    assert code == 0 and doc["drills"][0]["result"] == "PASS"
    assert "could not keep the drill of app in the store" in doc["warnings"][0]


def test_a_failing_drill_notifies_json_and_ntfy(tmp_path: Path) -> None:
    """Exit 3 with no exception raised is a failure too: the drill's failed check reaches every Apprise URL."""
    from httpd import Recorder

    (tmp_path / "smoke.sql").write_text("-- expect: rows >= 1000\nSELECT count(*) FROM users;\n")
    with Recorder() as server:
        where = server.url.removeprefix("http://")
        (tmp_path / "dbkeeper.toml").write_text(
            f'[notify]\nurls = ["json://{where}/hook", "ntfy://{where}/drills"]\n[notify.drill]\non = "failure"\n'
        )
        result = run_dbkeeper("drill", "--smoke", "smoke.sql")
        assert result.returncode == 3, result.stderr
        by_path = {r.path: r for r in server.requests}
        assert set(by_path) == {"/hook", "/"}
        doc, ntfy = by_path["/hook"].json(), by_path["/"].json()
        assert doc["type"] == "failure" and doc["title"].startswith("dbkeeper drill FAILED on ")
        assert doc["message"].startswith(
            "app: drill failed at smoke 1: SELECT count(*) FROM users -> 50, expected rows >= 1000"
        )
        assert doc["message"].endswith("store: backups")
        assert ntfy["topic"] == "drills" and ntfy["message"] == doc["message"]

        # A passing drill tells nobody under on = "failure".
        server.requests.clear()
        assert run_dbkeeper("drill").returncode == 0
        assert server.requests == []
