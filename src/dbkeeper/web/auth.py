"""Who may read the dashboard and press its buttons, where it listens, and where it lives behind a proxy.

- **Listening**: ``127.0.0.1:8090`` unless told otherwise. A loopback address reaches only this machine; any other
  address (``0.0.0.0``, a LAN address) requires credentials, or the server refuses to start.
- **Credentials** come from a file (``--auth-file``, readable by its owner only, like ``~/.pgpass``) or the
  environment (``DBKEEPER_WEB_AUTH``), never the command line, where ``ps`` shows them. One line: ``user:password``
  for HTTP basic authentication, or a token without a colon, sent as ``Authorization: Bearer TOKEN`` (or as the
  basic-auth password with any user name, so a browser's login prompt works too). With credentials, every page
  asks for them, on loopback too; ``/healthz`` never does (it says only "ok").
- **CSRF**: an action is a POST that must carry a token the page gave, tied to a random cookie by an HMAC with a
  secret of this process. Another site can make a browser send the POST and the cookie, but cannot read the
  page, so it cannot know the token. A POST whose ``Origin`` is another site's is refused as well.
- **Path prefix**: behind a reverse proxy that serves the dashboard at ``/dbkeeper/``, ``--root-path /dbkeeper``
  (or the proxy's ``X-Forwarded-Prefix`` header) makes every link carry the prefix.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbkeeper.errors import ConfigError, UsageError

AUTH_ENV = "DBKEEPER_WEB_AUTH"
DEFAULT_LISTEN = "127.0.0.1:8090"
_PREFIX_RE = re.compile(r"^(/[A-Za-z0-9._~-]+)*\Z")


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_listen(text: str) -> Listen:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (loopback); UsageError otherwise."""
    match = re.fullmatch(r"\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<p6>\d{1,5})|(?P<host>[^:\[\]]*):(?P<port>\d{1,5})", text)
    if match is None:
        raise UsageError(f"--listen {text!r} is not HOST:PORT", "e.g. --listen 127.0.0.1:8090 or --listen [::1]:8090")
    host = match["v6"] or match["host"] or "127.0.0.1"
    port = int(match["p6"] or match["port"])
    if not 0 < port < 65536:
        raise UsageError(f"--listen {text!r}: port {port} is out of range", "use a port from 1 to 65535")
    return Listen(host, port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


@dataclass(frozen=True)
class Credentials:
    """A token (``user`` None) or a user and password; ``accepts`` checks an Authorization header in constant
    time."""

    secret: str
    user: str | None = None

    @classmethod
    def parse(cls, text: str, where: str) -> Credentials:
        line = text.strip()
        if not line or "\n" in line:
            raise ConfigError(
                f"{where} must hold one line: user:password, or a token", "write one line, e.g. `openssl rand -hex 32`"
            )
        if ":" in line:
            user, _, password = line.partition(":")
            if not user or not password:
                raise ConfigError(f"{where}: both the user and the password must be non-empty", "write user:password")
            return cls(password, user)
        return cls(line)

    def accepts(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and self.user is None:
            return hmac.compare_digest(value.encode(), self.secret.encode())
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        user_ok = self.user is None or hmac.compare_digest(user.encode(), self.user.encode())
        return hmac.compare_digest(password.encode(), self.secret.encode()) and user_ok


def load_credentials(path: str | None, environ: dict[str, str] | None = None) -> Credentials | None:
    """The credentials from ``path`` (owner-only), else ``$DBKEEPER_WEB_AUTH``; None when neither is given."""
    env = os.environ if environ is None else environ
    if path:
        file = Path(path)
        try:
            mode = file.stat().st_mode
            text = file.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read the auth file {path}: {exc.strerror or exc}", "check the path") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"the auth file {path} may be read by others (mode {stat.S_IMODE(mode):04o})", f"chmod 600 {path}"
            )
        return Credentials.parse(text, path)
    if env.get(AUTH_ENV):
        return Credentials.parse(env[AUTH_ENV], AUTH_ENV)
    return None


def require_safe(listen: Listen, credentials: Credentials | None) -> None:
    """Refuse to serve a non-loopback address without credentials."""
    if not listen.loopback and credentials is None:
        raise UsageError(
            f"--listen {listen.host} is reachable from other machines, and no credentials were given",
            f"put a token (or user:password) in a file only you can read and pass --auth-file FILE, or set {AUTH_ENV};"
            " or listen on 127.0.0.1 behind an authenticating proxy",
        )


class Csrf:
    """Tokens for the action forms: HMAC(secret of this process, the browser's random cookie)."""

    COOKIE = "dbkeeper_csrf"
    FIELD = "csrf_token"

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(24)

    def token(self, cookie: str) -> str:
        return hmac.new(self._secret, cookie.encode(), hashlib.sha256).hexdigest()

    def valid(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token:
            return False
        return hmac.compare_digest(self.token(cookie), token)


def same_origin(origin: str | None, host: str | None) -> bool:
    """A POST's Origin header names this server (or is absent, as from some clients); "null" is never ours."""
    if origin is None:
        return True
    if not host:
        return False
    return origin.split("://", 1)[-1].rstrip("/") == host


def clean_prefix(prefix: str | None) -> str:
    """A path prefix as ``/a/b`` (no trailing slash), "" for none; UsageError for anything that is not a path."""
    if not prefix or prefix == "/":
        return ""
    prefix = "/" + prefix.strip("/")
    if not _PREFIX_RE.match(prefix):
        raise UsageError(f"--root-path {prefix!r} is not a plain path", "e.g. --root-path /dbkeeper")
    return prefix


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class PrefixMiddleware:
    """Serve the app under ``root_path`` (or a proxy's ``X-Forwarded-Prefix``, when it is a plain path): links
    carry the prefix (SCRIPT_NAME), and a request path that still starts with it (a proxy that does not strip it)
    is served without it."""

    def __init__(self, app: WSGIApp, root_path: str) -> None:
        self.app = app
        self.root_path = root_path

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        prefix = self.root_path
        forwarded = environ.get("HTTP_X_FORWARDED_PREFIX")
        if forwarded:
            with contextlib.suppress(UsageError):  # not a plain path: ignored, never copied into links
                prefix = clean_prefix(forwarded)
        if prefix:
            path = environ.get("PATH_INFO", "")
            if path == prefix or path.startswith(prefix + "/"):
                environ["PATH_INFO"] = path[len(prefix) :] or "/"
            environ["SCRIPT_NAME"] = prefix
        return self.app(environ, start_response)
