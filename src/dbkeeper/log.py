"""What dbkeeper says on stderr besides its result: errors, warnings, notes and (with ``-v``) details, as text
lines or, with ``--log-format json``, one JSON object per line (``{"ts", "level", "message", "hint", …}``) for a
log collector. ``main`` configures it once from ``-q``/``-v``/``--log-format``; everything that writes to stderr
goes through here, so the choice holds everywhere.

``-q`` keeps errors and warnings and turns progress lines off; ``-v`` adds the debug level (each notification
sent, each phase of a long job). Results (a command's report on stdout, ``--json``) are not log lines and are
never affected.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
FORMATS = ("text", "json")


@dataclass
class Settings:
    threshold: int = LEVELS["info"]
    json: bool = False
    progress: bool = True  # progress lines on a terminal


settings = Settings()
_lock = threading.Lock()  # one line at a time, from any thread (a progress line may be drawn meanwhile)


def configure(*, quiet: bool = False, verbose: int = 0, fmt: str = "text") -> None:
    settings.threshold = LEVELS["warning"] if quiet else LEVELS["debug"] if verbose else LEVELS["info"]
    settings.json = fmt == "json"
    settings.progress = not quiet and not settings.json


def enabled(level: str) -> bool:
    return LEVELS[level] >= settings.threshold


def emit(level: str, message: str, hint: str | None = None, **fields: Any) -> None:
    if not enabled(level):
        return
    if settings.json:
        doc = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"), "level": level}
        doc.update(message=message, **({"hint": hint} if hint else {}), **fields)
        text = json.dumps(doc, default=str) + "\n"
    else:
        prefix = "dbkeeper: " + ("" if level == "info" else f"{level}: ")
        text = prefix + message + "\n" + (f"  Try: {hint}\n" if hint else "")
    with _lock:
        sys.stderr.write(text)
        sys.stderr.flush()


def error(message: str, hint: str | None = None, **fields: Any) -> None:
    emit("error", message, hint, **fields)


def warning(message: str, hint: str | None = None, **fields: Any) -> None:
    emit("warning", message, hint, **fields)


def info(message: str, **fields: Any) -> None:
    emit("info", message, **fields)


def debug(message: str, **fields: Any) -> None:
    emit("debug", message, **fields)
