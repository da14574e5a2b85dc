"""Config validation of [schedule], [notify] and [drill]: an error names the file, the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbkeeper import config
from dbkeeper.errors import ConfigError


def load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "dbkeeper.toml"
    path.write_text(text)
    return config.load(str(path))


def test_valid_schedule_and_notify(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        '[schedule]\nbackup = "30 1 * * *"\nprune = "off"\ndrill = "@weekly"\n'
        '[notify]\nwebhook_url = "https://hooks.slack.com/services/T/B/X"\nping_url = "https://hc-ping.com/u"\n'
        "on_success = true\n",
    )
    assert cfg.schedule == config.ScheduleConfig(backup="30 1 * * *", prune="off", drill="@weekly")
    assert cfg.notify == config.NotifyConfig(
        webhook_url="https://hooks.slack.com/services/T/B/X", ping_url="https://hc-ping.com/u", on_success=True
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[schedule]\nbackup = "0 25 * * *"', "schedule.backup: hour: 25 is out of range 0-23"),
        ('[schedule]\ndrill = "0 4 1 * 0"', "schedule.drill: '0 4 1 * 0' sets both a day of month and a day of week"),
        ("[schedule]\nbackup = 2", 'schedule.backup: must be a cron expression in UTC such as "0 2 * * *", or "off"'),
        ('[schedule]\nprune = "daily"', "schedule.prune: 'daily' has 1 fields"),
        ('[schedule]\nrestore = "0 2 * * *"', "unknown key schedule.restore"),
        ('[schedule]\ncopy = "0 5 * * *"', "schedule.copy is set but copy_to names no store"),
        ('[notify]\nwebhook_url = "hooks.slack.com/x"', "notify.webhook_url: must be an http:// or https:// URL"),
        ('[notify]\nping_url = "file:///etc/passwd"', "notify.ping_url: must be an http:// or https:// URL"),
        ('[notify]\non_success = "yes"', "notify.on_success: must be true or false"),
        ('[schedule]\nbackup = "\u00b2 2 * * *"', "schedule.backup: minute: '\u00b2' is not supported"),
        ('[schedule]\nbackup = "*/\u00b2 2 * * *"', "schedule.backup: minute: step '\u00b2' in '*/\u00b2' must be"),
        pytest.param(
            f'[schedule]\nbackup = "{"9" * 5000} 2 * * *"',
            "schedule.backup: minute: 99999999999999999999… is out of range 0-59",
            id="5000-digit-minute",
        ),
        ('[drill]\nmax_age = "99999999999d"', "drill.max_age: max_age '99999999999d' is too long; write at most"),
        pytest.param(f'[drill]\nmax_age = "{"9" * 400}w"', "9w' is too long", id="400-digit-max_age"),
    ],
)
def test_invalid_values_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert info.value.message.startswith(f"{tmp_path / 'dbkeeper.toml'}: ")
    assert message in info.value.message


def test_an_integer_too_long_for_python_is_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "dbkeeper.toml"
    path.write_text(f"[retention]\nkeep_last = {'9' * 5000}\n")
    with pytest.raises(ConfigError, match="is not valid TOML") as info:
        config.load(str(path))
    assert info.value.message.startswith(f"{path} is not valid TOML: ")


def test_notify_urls_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBKEEPER_WEBHOOK_URL", "https://example.com/hook/SECRET")
    monkeypatch.setenv("DBKEEPER_PING_URL", "https://hc-ping.com/SECRET")
    cfg = load(tmp_path, '[notify]\nwebhook_url = "https://other.example/x"\n')
    assert cfg.notify.webhook_url == "https://example.com/hook/SECRET"
    assert cfg.notify.ping_url == "https://hc-ping.com/SECRET"
    monkeypatch.setenv("DBKEEPER_PING_URL", "hc-ping.com/SECRET")
    with pytest.raises(ConfigError, match="DBKEEPER_PING_URL: must be an http") as info:
        load(tmp_path, "")
    assert "SECRET" not in info.value.message
