"""Durations and sizes as people write and read them: ``26h``, ``7d``, ``1d12h``; ``3h 12m``; ``12.3 MB``.

One parser for every option and config key that takes a duration (``--max-age``, ``[drill] max_age``), so
that ``7d`` means the same thing everywhere. Units: ``s``, ``m`` (minutes), ``h``, ``d``, ``w``; parts may be
combined (``1d12h``) and spelled out (``7 days``); a bare number is refused: ``--max-age 26`` is ambiguous.
"""

from __future__ import annotations

import re
from datetime import timedelta

from dbkeeper.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_WORDS = r"s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|weeks?"
_PART = re.compile(rf"(\d+(?:\.\d+)?)({_WORDS})")
_WHOLE = re.compile(rf"(?:\d+(?:\.\d+)?(?:{_WORDS}))+")


def parse_duration(text: str, what: str = "duration", *, allow_zero: bool = False) -> timedelta:
    """``90m``, ``26h``, ``7d``, ``2w``, ``1d12h`` -> timedelta; UsageError naming ``what`` otherwise (and for
    zero, unless ``allow_zero``)."""
    compact = text.strip().lower().replace(" ", "")
    if not _WHOLE.fullmatch(compact):
        raise UsageError(
            f"{what} {text!r} is not a duration",
            "write a number and a unit: 90m, 26h, 7d, 2w (s, m, h, d, w; parts may be combined: 1d12h)",
        )
    seconds = sum(float(n) * _UNITS[unit[0]] for n, unit in _PART.findall(compact))
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise UsageError(f"{what} {text!r} must be longer than zero")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise UsageError(f"{what} {text!r} is too long", "write at most 999999999d") from None


def format_duration(delta: timedelta) -> str:
    """The two largest units, rounded down; hours up to two days: ``45s``, ``3h 12m``, ``26h``, ``2d 4h``."""
    parts = _split(delta)
    first = next((i for i, (n, _) in enumerate(parts) if n), len(parts) - 1)
    shown = [f"{n}{unit}" for n, unit in parts[first : first + 2] if n]
    return " ".join(shown) or "0s"


def compact_duration(delta: timedelta) -> str:
    """A spelling that :func:`parse_duration` reads back exactly: ``26h``, ``7d``, ``36h``, ``2d12h``."""
    return "".join(f"{n}{unit}" for n, unit in _split(delta) if n) or "0s"


def _split(delta: timedelta) -> list[tuple[int, str]]:
    seconds = max(int(delta.total_seconds()), 0)
    units = ("d", "h", "m", "s") if seconds >= 2 * 86400 else ("h", "m", "s")
    parts = []
    for unit in units:
        n, seconds = divmod(seconds, _UNITS[unit])
        parts.append((n, unit))
    return parts


def format_seconds(seconds: float) -> str:
    """A measured time: ``40ms``, ``4.21s``, ``12.3s``, ``95s`` (never ``0.0s``: under a second in ms)."""
    if seconds < 0.9995:  # what would round to 1000ms is 1.00s
        return f"{max(seconds, 0) * 1000:.0f}ms"
    return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s" if seconds < 60 else f"{seconds:.0f}s"


def human_size(n: float) -> str:
    """Decimal units as ``ls -h --si`` and most dashboards show them: ``512 B``, ``12.3 MB``."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
