"""Cron lines and systemd units as text: quoting, escaping, and a user's crontab kept intact."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from dbkeeper.config import Config, ScheduleConfig, SourceConfig
from dbkeeper.schedule import jobs
from dbkeeper.schedule.render import Setup, cron_file, crontab_block, merge_crontab, systemd_units

ODD = Path("/srv/my app/50%/dbkeeper.toml")  # a space and a percent sign: both need escaping
CONFIG = Config(path=str(ODD), sources=(SourceConfig("app", "sqlite:///app.db"),), schedule=ScheduleConfig(drill="off"))
SETUP = Setup(("/opt/dbk/bin/dbkeeper",), ODD, user=False, run_as="backup")


def test_cron_line_quotes_for_sh_and_escapes_percent_for_cron() -> None:
    line = cron_file(jobs(CONFIG), SETUP).splitlines()[-1]
    fields = line.split(" ", 6)
    assert fields[:6] == ["0", "2", "*", "*", "*", "backup"]
    command = fields[6]
    assert "\\%" in command and "%" not in command.replace("\\%", "")
    unescaped = command.replace("\\%", "%")
    assert unescaped == (
        "(cd '/srv/my app/50%' && /opt/dbk/bin/dbkeeper --config '/srv/my app/50%/dbkeeper.toml'"
        " schedule run --now backup) 2>&1 | logger -t dbkeeper"
    )
    assert shlex.split(unescaped)[:3] == ["(cd", "/srv/my app/50%", "&&"]


def test_cron_file_sets_utc_shell_and_path_and_log_file() -> None:
    text = cron_file(
        jobs(CONFIG), Setup(("/usr/bin/dbkeeper",), Path("/etc/dbk.toml"), False, "root", "/var/log/d.log")
    )
    assert [line for line in text.splitlines() if line.startswith(("CRON", "SHELL"))] == [
        "CRON_TZ=UTC",
        "SHELL=/bin/sh",
    ]
    assert text.splitlines()[-1].endswith(") >> /var/log/d.log 2>&1")


def test_user_crontab_block_sets_no_variables() -> None:
    block = crontab_block(jobs(CONFIG), Setup(("/usr/bin/dbkeeper",), Path("/home/me/dbk.toml"), True, "me"))
    lines = block.splitlines()
    assert lines[0].startswith("# BEGIN dbkeeper") and lines[-1] == "# END dbkeeper"
    assert not [line for line in lines if "=" in line.split(" ")[0]]  # no NAME=value lines
    assert lines[-2].startswith(
        "0 2 * * * (cd /home/me && /usr/bin/dbkeeper --config /home/me/dbk.toml schedule run --now backup)"
    )
    assert lines[-3] == '# backup, then prune (default "0 2 * * *")'  # what the job runs, said above it


BLOCK = "# BEGIN dbkeeper: new\n0 2 * * * new\n# END dbkeeper\n"


@pytest.mark.parametrize(
    ("existing", "merged"),
    [
        ("", BLOCK),
        ("MAILTO=me\n5 * * * * mine\n", "MAILTO=me\n5 * * * * mine\n" + BLOCK),
        ("5 * * * * mine", "5 * * * * mine\n" + BLOCK),
        (
            "5 * * * * mine\n# BEGIN dbkeeper: old\n0 3 * * * old\n0 4 * * 0 old\n# END dbkeeper\n7 * * * * other\n",
            "5 * * * * mine\n" + BLOCK + "7 * * * * other\n",
        ),
    ],
)
def test_merge_crontab_replaces_only_our_block(existing: str, merged: str) -> None:
    assert merge_crontab(existing, BLOCK) == merged
    assert merge_crontab(merged, BLOCK) == merged  # installing twice changes nothing


def test_systemd_units_escape_specifiers_and_quote_words() -> None:
    units = systemd_units(jobs(CONFIG), SETUP)
    assert sorted(units) == ["dbkeeper-backup.service", "dbkeeper-backup.timer"]
    service = units["dbkeeper-backup.service"]
    assert "WorkingDirectory=/srv/my app/50%%\n" in service
    assert (
        'ExecStart=/opt/dbk/bin/dbkeeper --config "/srv/my app/50%%/dbkeeper.toml" schedule run --now backup\n'
    ) in service
    assert service.count("ExecStart=") == 1 and "Description=dbkeeper backup, then prune" in service
    assert "Type=oneshot" in service and "After=network-online.target" in service
    timer = units["dbkeeper-backup.timer"]
    assert "OnCalendar=*-*-* 02:00:00 UTC\nPersistent=true\nRandomizedDelaySec=0\n" in timer
    assert timer.endswith("[Install]\nWantedBy=timers.target\n")


def test_user_units_do_not_wait_for_system_targets() -> None:
    units = systemd_units(jobs(CONFIG), Setup(("/usr/bin/dbkeeper",), Path("/home/me/dbk.toml"), True, "me"))
    assert "network-online" not in units["dbkeeper-backup.service"]
