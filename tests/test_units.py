"""Durations and sizes: what --max-age and [drill] max_age accept, and how ages are shown."""

from datetime import timedelta

import pytest

from dbkeeper.errors import UsageError
from dbkeeper.units import compact_duration, format_duration, format_seconds, human_size, parse_duration


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("90m", 5400),
        ("26h", 26 * 3600),
        ("7d", 7 * 86400),
        ("2w", 14 * 86400),
        ("1d12h", 36 * 3600),
        ("1.5h", 5400),
        ("30s", 30),
        ("7 days", 7 * 86400),
        ("26 hours", 26 * 3600),
        (" 2W ", 14 * 86400),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "26", "7dd", "d7", "-1d", "0h", "1y", "7d and more"])
def test_parse_duration_refuses_what_is_not_one(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_duration(text, "--max-age")
    assert "--max-age" in info.value.message


@pytest.mark.parametrize(
    "seconds,shown",
    [
        (0, "0s"),
        (-5, "0s"),
        (45, "45s"),
        (12 * 60 + 5, "12m 5s"),
        (3 * 3600 + 12 * 60 + 5, "3h 12m"),
        (26 * 3600, "26h"),
        (47 * 3600 + 59 * 60, "47h 59m"),
        (2 * 86400 + 5, "2d"),
        (9 * 86400 + 4 * 3600, "9d 4h"),
    ],
)
def test_format_duration(seconds: int, shown: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == shown


@pytest.mark.parametrize("text", ["26h", "7d", "90m", "2w", "1d12h", "45s"])
def test_compact_duration_reads_back(text: str) -> None:
    assert parse_duration(compact_duration(parse_duration(text))) == parse_duration(text)


def test_seconds_and_sizes() -> None:
    assert [format_seconds(s) for s in (0.041, 4.214, 12.34, 95.2)] == ["41ms", "4.21s", "12.3s", "95s"]
    assert [format_seconds(s) for s in (0.0, 0.0004, 0.9994, 0.9996, 1.0)] == ["0ms", "0ms", "999ms", "1.00s", "1.00s"]
    assert [human_size(n) for n in (512, 12_345_678, 0)] == ["512 B", "12.3 MB", "0 B"]
