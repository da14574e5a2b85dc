"""dbkeeper backup reports to a webhook and a dead-man's switch (a real HTTP server on loopback), and a
notifier that is down, failing or hanging never fails the backup."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import backup_files, cli, make_sqlite_app, run_dbkeeper
from httpd import Recorder, closed_port_url

TOKEN = "T0AAA-B0BBB-SECRETTOKEN"


@pytest.fixture
def server() -> Iterator[Recorder]:
    with Recorder() as recorder:
        yield recorder


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    make_sqlite_app(tmp_path / "app.db", users=10, sessions=10)
    return tmp_path


def write_config(app: Path, webhook: str, ping: str, on_success: bool = False, source: str = "app.db") -> None:
    (app / "dbkeeper.toml").write_text(
        f'[[sources]]\nname = "app"\nurl = "sqlite:///{source}"\n'
        f'[notify]\nwebhook_url = "{webhook}"\nping_url = "{ping}"\non_success = {str(on_success).lower()}\n'
    )


def test_success_pings_start_and_success(app: Path, server: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(app, f"{server.url}/hook/{TOKEN}", f"{server.url}/ping/{TOKEN}")
    code, _out, err = cli(capsys, "backup")
    assert code == 0 and err == ""
    assert server.paths() == [f"/ping/{TOKEN}/start", f"/ping/{TOKEN}"]
    assert "dbkeeper backup OK" in server.requests[1].text and "(app)" in server.requests[1].text


def test_success_webhook_with_on_success(app: Path, server: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(app, f"{server.url}/hook/{TOKEN}", f"{server.url}/ping/{TOKEN}", on_success=True)
    assert cli(capsys, "backup")[0] == 0
    doc = server.requests[-1].json()
    assert doc["ok"] and doc["databases"] == ["app"] and doc["store"] == "backups"
    assert [b["source"] for b in doc["backups"]] == ["app"] and doc["backups"][0]["file"].startswith("app/app_")


def test_failure_pings_fail_and_posts_the_error_hint_databases_and_store(
    app: Path, server: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(app, f"{server.url}/hook/{TOKEN}", f"{server.url}/ping/{TOKEN}", source="missing.db")
    code, _, err = cli(capsys, "backup")
    assert code == 1 and "dbkeeper: error: SQLite database missing.db does not exist" in err
    assert server.paths() == [f"/ping/{TOKEN}/start", f"/ping/{TOKEN}/fail", f"/hook/{TOKEN}"]
    assert "missing.db does not exist" in server.requests[1].text
    doc = server.requests[2].json()
    assert doc["ok"] is False and doc["job"] == "backup"
    assert doc["databases"] == ["app"] and doc["store"] == "backups"
    assert doc["errors"] == [
        {
            "source": "app",
            "error": "SQLite database missing.db does not exist",
            "hint": "check the path in the source URL",
        }
    ]
    assert "FAILED" in doc["text"] and "Try: check the path in the source URL" in doc["text"]


def test_environment_overrides_the_config(
    app: Path, server: Recorder, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(app, closed_port_url() + "/hook", closed_port_url() + "/ping")
    monkeypatch.setenv("DBKEEPER_PING_URL", f"{server.url}/env-ping/{TOKEN}")
    assert cli(capsys, "backup")[0] == 0
    assert server.paths() == [f"/env-ping/{TOKEN}/start", f"/env-ping/{TOKEN}"]


def test_a_bad_notify_url_is_a_config_error_that_does_not_show_it(
    app: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(app, f"file:///etc/{TOKEN}", "https://hc-ping.com/x")
    code, _, err = cli(capsys, "backup")
    assert code == 2 and "dbkeeper.toml: notify.webhook_url: must be an http:// or https:// URL" in err
    monkeypatch.setenv("DBKEEPER_WEBHOOK_URL", f"ftp://{TOKEN}")
    (app / "dbkeeper.toml").unlink()
    code, _, err = cli(capsys, "backup", "sqlite:///app.db")
    assert code == 2 and "DBKEEPER_WEBHOOK_URL: must be an http:// or https:// URL" in err
    assert TOKEN not in err


@pytest.mark.parametrize("failure", ["down", "500", "hang"])
def test_a_failing_notifier_never_fails_the_backup(app: Path, server: Recorder, failure: str) -> None:
    """As a real process, as cron runs it: the backup exits 0, one warning line per failed notification,
    and no URL path (the token) anywhere in the output."""
    base = closed_port_url() if failure == "down" else server.url
    server.answers["/hook"] = "hang" if failure == "hang" else 500
    ping = f"{server.url}/ping/{TOKEN}"  # a working ping, so the webhook alone is at fault
    write_config(app, f"{base}/hook/{TOKEN}", ping, on_success=True)
    t0 = time.monotonic()
    result = run_dbkeeper("backup", cwd=app, timeout=60)
    elapsed = time.monotonic() - t0
    assert result.returncode == 0, result.stderr
    assert len(backup_files(app / "backups")) == 3
    reason = {
        "down": "connection refused after 3 tries",
        "500": "HTTP 500 after 3 tries",
        "hang": "no answer within 5s",
    }
    assert result.stderr == (
        f"dbkeeper: warning: could not notify {base}: {reason[failure]}; the job itself is not affected\n"
    )
    assert TOKEN not in result.stdout + result.stderr
    assert server.paths()[:2] == [f"/ping/{TOKEN}/start", f"/ping/{TOKEN}"]
    if failure == "hang":
        assert 5 <= elapsed < 15  # one timeout, no retry
