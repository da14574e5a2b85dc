"""Tell someone how a run went: a Slack-compatible webhook and a healthchecks.io-style dead-man's switch.

Config ``[notify]`` (env ``DBKEEPER_WEBHOOK_URL`` / ``DBKEEPER_PING_URL`` override it):
- ``webhook_url``: on failure (and on success with ``on_success = true``) POST ``{"text": …, …details}``.
- ``ping_url``: POST ``<url>/start`` when the job starts, ``<url>`` when it succeeded, ``<url>/fail`` with the
  error when it failed. A run that never pings (cron stopped, host down) is what the switch notices.

A notifier never fails the job it reports on: each request has a short timeout and a couple of retries, and
what still fails becomes one warning line on stderr. A retry follows a refused connection or a 5xx/429 answer,
not a timeout (the server may have the message already, and the job should not wait on it again). URLs hold
tokens, so messages name only their scheme and host.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dbkeeper import __version__
from dbkeeper.config import Config
from dbkeeper.errors import DbkeeperError

TIMEOUT_S = 5.0
ATTEMPTS = 3
_BODY_LIMIT = 10_000  # healthchecks.io keeps the first 10 kB of a ping body


def _warn(line: str) -> None:
    sys.stderr.write(f"dbkeeper: warning: {line}\n")


@dataclass(frozen=True)
class Notifier:
    webhook_url: str | None = None
    ping_url: str | None = None
    on_success: bool = False
    timeout: float = TIMEOUT_S
    attempts: int = ATTEMPTS
    warn: Callable[[str], None] = _warn

    @classmethod
    def from_config(cls, cfg: Config) -> Notifier:
        n = cfg.notify
        return cls(n.webhook_url, n.ping_url, n.on_success)

    def run(self, job: str) -> Run:
        """``with notifier.run("backup") as run:`` pings start, then reports the outcome on leaving."""
        return Run(self, job)

    def ping(self, suffix: str, text: str = "") -> None:
        if self.ping_url:
            url = with_path_suffix(self.ping_url, suffix)
            self.post(url, text.encode()[:_BODY_LIMIT], "text/plain; charset=utf-8")

    def webhook(self, doc: dict[str, Any]) -> None:
        if self.webhook_url:
            self.post(self.webhook_url, json.dumps(doc, default=str).encode(), "application/json")

    def post(self, url: str, body: bytes, content_type: str) -> None:
        """POST ``body``; on failure warn (never raise)."""
        import http.client  # here, not at start-up: most runs send nothing
        import urllib.error
        import urllib.request

        headers = {"Content-Type": content_type, "User-Agent": f"dbkeeper/{__version__}"}
        # The scheme is http(s): config.py refuses any other.
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        problem = ""
        for attempt in range(1, self.attempts + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    response.read(64 * 1024)
                return
            except urllib.error.HTTPError as exc:
                problem, again = f"HTTP {exc.code}", exc.code >= 500 or exc.code == 429
            except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                problem, again = _describe(exc, self.timeout)
            if not again or attempt == self.attempts:
                break
            time.sleep(0.5 * attempt)
        tries = f" after {attempt} tries" if attempt > 1 else ""
        self.warn(f"could not notify {safe_url(url)}: {problem}{tries}; the job itself is not affected")


def _describe(exc: BaseException, timeout: float) -> tuple[str, bool]:
    """(what went wrong, whether to try again) for a failed request."""
    import urllib.error

    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g}s", False
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower(), True
    return str(reason) or type(reason).__name__, True


@dataclass
class Run:
    """One run of a job. Record failures with ``fail``; details (databases, store, …) go into the webhook."""

    notifier: Notifier
    job: str
    details: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""

    def fail(self, message: str, hint: str | None = None, source: str | None = None) -> None:
        self.errors.append({"source": source, "error": message, "hint": hint})

    @property
    def ok(self) -> bool:
        return not self.errors

    def text(self) -> str:
        host = socket.gethostname()
        if self.ok:
            return f"dbkeeper {self.job} OK on {host}" + (f": {self.summary}" if self.summary else "")
        what = "; ".join((f"{e['source']}: " if e["source"] else "") + e["error"] for e in self.errors)
        hints = [e["hint"] for e in self.errors if e["hint"]]
        return f"dbkeeper {self.job} FAILED on {host}: {what}" + (f"\nTry: {hints[0]}" if len(hints) == 1 else "")

    def webhook_doc(self) -> dict[str, Any]:
        return {
            "text": self.text(),
            "job": self.job,
            "ok": self.ok,
            "host": socket.gethostname(),
            "tool": f"dbkeeper {__version__}",
            **self.details,
            "errors": self.errors,
        }

    def __enter__(self) -> Run:
        self.notifier.ping("/start")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is not None and self.ok:
            if isinstance(exc, DbkeeperError):
                self.fail(exc.message, exc.hint)
            elif isinstance(exc, KeyboardInterrupt):
                self.fail("interrupted")
            else:
                self.fail(f"internal error: {type(exc).__name__}: {exc}")
        if self.ok:
            self.notifier.ping("", self.text())
            if self.notifier.on_success:
                self.notifier.webhook(self.webhook_doc())
        else:
            self.notifier.ping("/fail", self.text())
            self.notifier.webhook(self.webhook_doc())


def safe_url(url: str) -> str:
    """Scheme and host only: the path and query of a webhook or ping URL are its secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def with_path_suffix(url: str, suffix: str) -> str:
    """``https://hc-ping.com/UUID`` + ``/start`` -> ``https://hc-ping.com/UUID/start`` (query kept)."""
    if not suffix:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))
