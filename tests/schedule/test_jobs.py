"""Which jobs the config schedules, chained how, and when each runs next: tables, with the clock passed in."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dbkeeper.config import Config, PitrConfig, ScheduleConfig, SourceConfig, load
from dbkeeper.errors import ConfigError, UsageError
from dbkeeper.schedule import due, find, jobs, next_runs, pitr_drill_on

SOURCES = (SourceConfig("casino", "postgresql://app@db1/casino"),)
S1, S2 = "s3://acme/casino", "/mnt/offsite"


def cfg(schedule: dict[str, str] | None = None, copy_to: tuple[str, ...] = ()) -> Config:
    return Config(
        path="/srv/app/dbkeeper.toml",
        sources=SOURCES,
        copy_to=copy_to,
        schedule=ScheduleConfig(**{job.replace("-", "_"): expr for job, expr in (schedule or {}).items()}),
    )


def table(config: Config) -> list[tuple[str, str, list[tuple[str, ...]], str]]:
    return [(j.name, j.cron.expr, list(j.steps), j.origin) for j in jobs(config)]


COPY1, COPY2 = ("copy", "latest", "--to", S1), ("copy", "latest", "--to", S2)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            cfg(),
            [
                ("backup", "0 2 * * *", [("backup",), ("prune",)], "default"),
                ("drill", "0 4 * * 0", [("drill",)], "default"),
            ],
        ),
        (  # backup copies to copy_to itself, right after each backup is committed
            cfg({"backup": "30 1 * * *", "drill": "off"}, copy_to=(S1, S2)),
            [("backup", "30 1 * * *", [("backup",), ("prune",)], "schedule.backup")],
        ),
        (
            cfg({"prune": "0 3 * * *", "drill": "off"}),
            [("backup", "0 2 * * *", [("backup",)], "default"), ("prune", "0 3 * * *", [("prune",)], "schedule.prune")],
        ),
        (  # the same times spelled differently are the same schedule: chained
            cfg({"backup": "0 2 * * *", "prune": "00 02 * * 0-6", "drill": "off"}),
            [("backup", "0 2 * * *", [("backup",), ("prune",)], "schedule.backup")],
        ),
        (
            cfg({"copy": "0 5 * * *", "drill": "off"}, copy_to=(S1, S2)),
            [
                ("backup", "0 2 * * *", [("backup", "--no-copy"), ("prune",)], "default"),
                ("copy", "0 5 * * *", [COPY1, COPY2], "schedule.copy"),
            ],
        ),
        (
            cfg({"prune": "off", "copy": "off", "drill": "off"}, copy_to=(S1,)),
            [("backup", "0 2 * * *", [("backup", "--no-copy")], "default")],
        ),
        (  # backup off: what would follow it goes too, unless it has a schedule of its own
            cfg({"backup": "off", "drill": "@weekly"}, copy_to=(S1,)),
            [("drill", "@weekly", [("drill",)], "schedule.drill")],
        ),
        (
            cfg({"backup": "off", "prune": "0 3 * * *", "drill": "off"}),
            [("prune", "0 3 * * *", [("prune",)], "schedule.prune")],
        ),
    ],
)
def test_jobs(config: Config, expected: list[tuple[str, str, list[tuple[str, ...]], str]]) -> None:
    assert table(config) == expected


def test_with_a_pitr_source_base_backups_and_the_pitr_drill_are_scheduled_too() -> None:
    pitr = PitrConfig(source="casino-pg")
    config = replace(cfg(), pitr=pitr)
    assert table(config)[2:] == [
        ("basebackup", "0 1 * * *", [("basebackup",)], "default"),
        ("pitr-drill", "30 4 * * 0", [("drill", "--pitr")], "default"),
    ]
    assert pitr_drill_on(jobs(config))
    config = replace(cfg({"basebackup": "0 */6 * * *", "pitr-drill": "off"}), pitr=pitr)
    assert table(config)[2:] == [("basebackup", "0 */6 * * *", [("basebackup",)], "schedule.basebackup")]
    assert not pitr_drill_on(jobs(config))
    assert [j.name for j in jobs(cfg())] == ["backup", "drill"]  # no [pitr] source: no PITR jobs


def test_a_pitr_job_without_a_pitr_source_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "dbkeeper.toml"
    path.write_text('[schedule]\npitr-drill = "0 5 * * 0"\n')
    with pytest.raises(ConfigError, match=r"schedule.pitr-drill is set but \[pitr\] names no source"):
        load(str(path))
    path.write_text('[schedule]\npitr-drill = "0 5 * * 0"\nbasebackup = "off"\n[pitr]\nsource = "casino-pg"\n')
    assert load(str(path)).schedule.pitr_drill == "0 5 * * 0"


def test_a_copy_schedule_without_copy_to_schedules_no_copy() -> None:
    assert [j.name for j in jobs(cfg({"copy": "0 5 * * *", "drill": "off"}))] == ["backup"]  # load refuses it


def test_describe() -> None:
    backup = jobs(cfg(copy_to=(S1,)))[0]
    assert backup.describe() == "dbkeeper backup && dbkeeper prune"


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-11-27T01:00:00", [("backup", "2026-11-27T02:00:00"), ("drill", "2026-11-29T04:00:00")]),  # Friday
        ("2026-11-27T02:00:00", [("backup", "2026-11-27T02:00:00"), ("drill", "2026-11-29T04:00:00")]),  # at: due
        ("2026-11-27T02:00:01", [("backup", "2026-11-28T02:00:00"), ("drill", "2026-11-29T04:00:00")]),
        ("2026-11-29T03:00:00", [("drill", "2026-11-29T04:00:00"), ("backup", "2026-11-30T02:00:00")]),  # Sunday
        ("2026-11-29T04:00:00", [("drill", "2026-11-29T04:00:00"), ("backup", "2026-11-30T02:00:00")]),
        ("2026-03-29T01:30:00", [("backup", "2026-03-29T02:00:00"), ("drill", "2026-03-29T04:00:00")]),  # EU DST
        ("2026-12-31T02:30:00", [("backup", "2027-01-01T02:00:00"), ("drill", "2027-01-03T04:00:00")]),
    ],
)
def test_next_runs(now: str, expected: list[tuple[str, str]]) -> None:
    runs = next_runs(jobs(cfg()), t(now))
    assert [(job.name, when) for when, job in runs] == [(name, t(when)) for name, when in expected]


def test_next_runs_ties_go_in_job_order() -> None:
    config = cfg({"backup": "0 4 * * 0", "prune": "0 4 * * 0", "drill": "0 4 * * 0"})
    assert [job.name for _, job in next_runs(jobs(config), t("2026-11-27T00:00:00"))] == ["backup", "drill"]


@pytest.mark.parametrize(
    ("now", "names"),
    [
        ("2026-11-27T02:00:00", ["backup"]),
        ("2026-11-27T02:00:59", ["backup"]),
        ("2026-11-27T02:01:00", []),
        ("2026-11-29T04:00:30", ["drill"]),
        ("2026-11-29T02:00:00", ["backup"]),
    ],
)
def test_due(now: str, names: list[str]) -> None:
    assert [job.name for job in due(jobs(cfg()), t(now))] == names


def test_find() -> None:
    found = jobs(cfg())
    assert find(found, "drill").name == "drill"
    with pytest.raises(UsageError, match="no scheduled job named prune") as info:
        find(found, "prune")
    assert info.value.hint is not None and "scheduled jobs: backup, drill" in info.value.hint
