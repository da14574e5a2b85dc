"""Tell someone how a job went: Apprise URLs (ntfy, email, Discord, Slack, Teams, Telegram, JSON webhooks …), a
Slack-shaped webhook, and a healthchecks.io-style dead-man's switch. Every job reports here: backup, prune, copy,
verify, drill (and the WAL archive's work, as job ``wal``): ``Notifier.for_job(cfg, job).run()``.

Config ``[notify]`` (see config.NotifyConfig):
- ``urls``: Apprise URLs, told of each run as ``on`` says: ``failure`` (default), ``always``, ``never``;
  ``[notify.<job>] on`` overrides it for one job. The message: a title ``dbkeeper drill FAILED on ops1`` and a
  body with what failed, the hint, the store.
- ``webhook_url``: the same runs as a POST of ``{"text": …, …details}`` (Slack's incoming webhooks read it).
- ``ping_url``: POST ``<url>/start`` when the job starts, ``<url>`` when it succeeded, ``<url>/fail`` with the
  error when it failed. A run that never pings (cron stopped, host down) is what the switch notices. It is the
  backup job's; ``[notify.<job>] ping_url`` gives another job one. Under ``schedule run`` the scheduler pings
  once the whole job (backup, then prune …) is over, and the steps it runs do not (``SCHEDULED_JOB_ENV``).

A notifier never fails the job it reports on: each request has a short timeout (the ping and webhook also a
couple of retries), and what still fails becomes one warning line on stderr. A retry follows a refused
connection or a 5xx/429 answer, not a timeout (the server may have the message already, and the job should not
wait on it again). URLs hold tokens, so messages name only their scheme and host (an Apprise URL: its scheme
and its place in the list), and every text sent is passed through engines.redact_text: no database password
reaches a chat room.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType, TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dbkeeper import __version__, log
from dbkeeper.config import Config
from dbkeeper.engines import redact_text
from dbkeeper.errors import DbkeeperError

SCHEDULED_JOB_ENV = "DBKEEPER_SCHEDULED_JOB"  # set by `schedule run` for its steps: the scheduler pings, not they
TIMEOUT_S = 5.0
ATTEMPTS = 3
_BODY_LIMIT = 10_000  # healthchecks.io keeps the first 10 kB of a ping body


def _warn(line: str) -> None:
    log.warning(line)


def load_apprise() -> ModuleType:
    """Apprise, imported when a URL is to be checked or told (it costs a fifth of a second), with its log kept
    off stderr: what fails is said once, by ``Notifier.tell``."""
    import logging

    import apprise

    logger = logging.getLogger("apprise")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return apprise


@dataclass(frozen=True)
class Notifier:
    webhook_url: str | None = None
    ping_url: str | None = None
    on: str = "failure"  # when urls and the webhook are told: failure | always | never
    urls: tuple[str, ...] = ()
    job: str = "backup"
    timeout: float = TIMEOUT_S
    attempts: int = ATTEMPTS
    warn: Callable[[str], None] = _warn

    @classmethod
    def for_job(cls, cfg: Config, job: str) -> Notifier:
        """The notifier of one job, with its policy and its ping (none in a step of a scheduled job: the
        scheduler pings for the whole job)."""
        n = cfg.notify
        ping = None if os.environ.get(SCHEDULED_JOB_ENV) else n.ping_for(job)
        return cls(n.webhook_url, ping, n.on_for(job), n.urls, job)

    def alert(self, message: str, hint: str | None = None, **details: Any) -> None:
        """Tell of something that went wrong outside a run (a WAL file refused for different bytes): the Apprise
        URLs and the webhook, unless the job's policy is ``never``; no ping, which belongs to runs."""
        if self.on == "never":
            return
        run = Run(self, self.job, dict(details))
        run.fail(message, hint)
        self.webhook(run.webhook_doc())
        self.tell(run.title(), run.body(), False)

    def run(self, job: str | None = None) -> Run:
        """``with notifier.run() as run:`` pings start, then reports the outcome on leaving."""
        return Run(self, job or self.job)

    def tell(self, title: str, body: str, ok: bool) -> None:
        """Send one message to every Apprise URL; a URL that fails is one warning, the others are still told."""
        if not self.urls:
            return
        apprise = load_apprise()
        kind = apprise.NotifyType.SUCCESS if ok else apprise.NotifyType.FAILURE
        asset = apprise.AppriseAsset(storage_mode=apprise.PersistentStoreMode.MEMORY, service_timeout=self.timeout)
        for i, url in enumerate(self.urls):
            named = apprise_name(url, i)
            service = apprise.Apprise.instantiate(url, asset=asset, suppress_exceptions=True)
            if service is None:  # config.load checked it; a Notifier built in code may not be
                self.warn(f"could not notify {named}: not an Apprise URL; the job itself is not affected")
                continue
            with apprise.LogCapture(level=apprise.logging.WARNING) as captured:
                sent = service.notify(body=redact_text(body), title=redact_text(title), notify_type=kind)
            if sent:
                log.debug(f"notified {named}", job=self.job)
            else:
                lines = [line.strip() for line in captured.getvalue().splitlines() if line.strip()]
                why = redact_text(lines[-1].split(" - ", 2)[-1])[:200] if lines else "it was not accepted"
                self.warn(f"could not notify {named}: {why}; the job itself is not affected")

    def ping(self, suffix: str, text: str = "") -> None:
        if self.ping_url:
            url = with_path_suffix(self.ping_url, suffix)
            self.post(url, redact_text(text).encode()[:_BODY_LIMIT], "text/plain; charset=utf-8")

    def webhook(self, doc: dict[str, Any]) -> None:
        if self.webhook_url:
            body = json.dumps(_redacted(doc), default=str)
            self.post(self.webhook_url, body.encode(), "application/json")

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
                log.debug(f"notified {safe_url(url)}", job=self.job)
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


def _redacted(value: Any) -> Any:
    """Every string in a JSON document through redact_text (the document's own text, not its serialised form,
    which a redaction could cut through a closing quote)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


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

    def title(self) -> str:
        return f"dbkeeper {self.job} {'OK' if self.ok else 'FAILED'} on {socket.gethostname()}"

    def body(self) -> str:
        """What happened, for a person reading a chat message or a mail: each failure with its hint, then where."""
        if self.ok:
            lines = [self.summary or "done"]
        else:
            lines = []
            for e in self.errors:
                lines.append((f"{e['source']}: " if e["source"] else "") + e["error"])
                if e["hint"]:
                    lines.append(f"  Try: {e['hint']}")
        store = self.details.get("store")
        if store:
            lines.append(f"store: {store}")
        return "\n".join(lines)

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
        notifier = self.notifier
        notifier.ping("" if self.ok else "/fail", self.text())
        if notifier.on == "always" or (notifier.on == "failure" and not self.ok):
            notifier.webhook(self.webhook_doc())
            notifier.tell(self.title(), self.body(), self.ok)


def apprise_name(url: str, index: int) -> str:
    """An Apprise URL as messages name it: its scheme and its place in the list. Not its host: some services
    keep the token there (``tgram://BOTTOKEN/CHAT``), others in the path or the topic (``ntfy://host/TOPIC``)."""
    scheme = url.partition("://")[0][:20] if "://" in url else "?"
    return f"{scheme}:// (notify.urls[{index}])"


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
