"""Where a PostgreSQL database is, and how to name one in SQL.

Connection details travel to the client programs in the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE,
PGPASSWORD only when the URL carried one), never on the command line where ``ps`` would show them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from dbkeeper import proc
from dbkeeper.engines.interface import SourceKey, redact
from dbkeeper.errors import UsageError

_PARAM_ENV = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "service": "PGSERVICE",
    "passfile": "PGPASSFILE",
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "dbname": "PGDATABASE",
    "application_name": "PGAPPNAME",
    "options": "PGOPTIONS",
    "client_encoding": "PGCLIENTENCODING",
}


_CONNINFO_PAIR = re.compile(r"\s*([A-Za-z_]+)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|([^\s']*))", re.DOTALL)
_CONNINFO_HEAD = re.compile(r"^\s*[A-Za-z_]+\s*=")


def is_conninfo(text: str) -> bool:
    """A libpq key/value connection string (``host=db1 port=5432 dbname=casino``), as psql takes after -d."""
    return bool(_CONNINFO_HEAD.match(text)) and "://" not in text.split("=", 1)[0]


def conninfo_url(text: str) -> str:
    """The postgresql:// URL of a libpq key/value connection string, so that every PostgreSQL source or target is
    parsed once, by ``PgConn.from_url``. Values may be single-quoted (``\\'`` and ``\\\\`` inside), as libpq
    reads them; a keyword dbkeeper does not pass on (or a list of hosts) is refused like an unknown URL parameter."""
    pos, pairs = 0, {}
    text = text.rstrip()
    while pos < len(text):
        m = _CONNINFO_PAIR.match(text, pos)
        if not m or m.end() == pos:
            raise UsageError(
                f"cannot read the connection string at {text[pos : pos + 20]!r}",
                "write keyword=value pairs separated by spaces: host=db1 port=5432 dbname=casino user=app",
            )
        quoted, bare = m.group(2), m.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted, flags=re.DOTALL) if quoted is not None else bare
        pairs[m.group(1).lower()] = value
        pos = m.end()
    if "hostaddr" in pairs:
        pairs.setdefault("host", pairs.pop("hostaddr"))
    host, port = pairs.pop("host", ""), pairs.pop("port", "")
    user, password = pairs.pop("user", ""), pairs.pop("password", None)
    dbname = pairs.pop("dbname", "")
    if "," in host or "," in port:
        raise UsageError("a connection string with several hosts is not supported", "name one host")
    if port and not port.isdigit():
        raise UsageError(f"bad port {port!r} in the connection string", "write port=5432")
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password is not None else "")
    if re.fullmatch(r"[a-z0-9._-]*", host):
        where = host
    elif _is_ipv6(host) and host == host.lower():
        where = f"[{host}]"
    else:  # a socket directory, or anything a URL's host part cannot hold: libpq's host parameter
        where, pairs["host"] = "", host
    query = f"?{urlencode(sorted(pairs.items()))}" if pairs else ""
    at = "@" if auth else ""
    return f"postgresql://{auth}{at}{where}{':' + port if port else ''}/{quote(dbname, safe='')}{query}"


def _is_ipv6(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def with_database(url: str, dbname: str) -> str:
    """``url`` (a postgresql:// URL, as given: its password and parameters kept) naming database ``dbname``."""
    parts = urlsplit(url)
    params = [(k, v) for k, v in parse_qsl(parts.query) if k != "dbname"]
    query = f"?{urlencode(params)}" if params else ""
    return f"{parts.scheme}://{parts.netloc}/{quote(dbname, safe='')}{query}"  # geturl() drops an empty netloc


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class PgConn:
    """Where a database is. ``password`` comes only from the URL and is never shown."""

    dbname: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_url(cls, url: str, *, dbname: str | None = None) -> PgConn:
        """Parse a libpq URL; ``dbname`` names the database instead of the URL's database part (which may then
        be absent: a server URL)."""
        try:
            parts = urlsplit(url)
        except ValueError as exc:  # an unclosed "[" of an IPv6 host
            raise UsageError(
                f"{redact(url)} is not a valid URL: {exc}", "write postgresql://user@host:5432/db"
            ) from None
        try:
            port = parts.port
        except ValueError:
            raise UsageError(f"bad port in {redact(url)}", "write postgresql://user@host:5432/db") from None
        if "@" in parts.netloc and "@" in parts.path:
            # A password holding '/' ends the host part early: what follows would be taken for a host and a
            # database (and shown). Refused rather than guessed.
            raise UsageError(
                f"cannot tell the password from the host in {redact(url)}",
                "percent-encode '/' and '@' in the password (%2F, %40), or better, put it in ~/.pgpass",
            )
        params = dict(parse_qsl(parts.query))
        named = params.pop("dbname", unquote(parts.path.lstrip("/")))
        dbname = dbname or named
        unknown = sorted(set(params) - set(_PARAM_ENV))
        if unknown:
            raise UsageError(f"unknown connection parameter {unknown[0]!r} in {redact(url)}")
        if not dbname:
            raise UsageError(f"{redact(url)} names no database", "add it: postgresql://user@host:5432/DBNAME")
        return cls(
            dbname=dbname,
            host=unquote(parts.hostname) if parts.hostname else params.pop("host", None),
            port=port,
            user=unquote(parts.username) if parts.username else params.pop("user", None),
            password=unquote(parts.password) if parts.password is not None else None,
            params=tuple(sorted(params.items())),
        )

    def with_db(self, dbname: str) -> PgConn:
        return replace(self, dbname=dbname)

    def env(self) -> dict[str, str]:
        extra = {_PARAM_ENV[k]: v for k, v in self.params}
        extra["PGDATABASE"] = self.dbname
        extra.setdefault("PGAPPNAME", "dbkeeper")
        extra.setdefault("PGCONNECT_TIMEOUT", "10")
        if self.host:
            extra["PGHOST"] = self.host
        if self.port:
            extra["PGPORT"] = str(self.port)
        if self.user:
            extra["PGUSER"] = self.user
        if self.password is not None:
            extra["PGPASSWORD"] = self.password
        return proc.child_env(extra)

    @property
    def where(self) -> str:
        host = self.host or "local socket"
        return f"{host}:{self.port}" if self.port else host

    def display(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"postgresql://{user}{self.host or ''}{port}/{self.dbname}"

    def url(self) -> str:
        """The URL as given, with its parameters, and ``***`` for a password (fit for results and labels)."""
        user = quote(self.user, safe="") if self.user else ""
        if self.password is not None:
            user += ":***"
        port = f":{self.port}" if self.port else ""
        query = f"?{urlencode(self.params)}" if self.params else ""
        host = self.host or ""
        if "/" in host:  # a socket directory
            host = quote(host, safe="")
        elif ":" in host:  # an IPv6 address
            host = f"[{host}]"
        return f"postgresql://{user}{'@' if user else ''}{host}{port}/{quote(self.dbname, safe='')}{query}"


def pg_key(conn: PgConn, *, globals_only: bool = False) -> SourceKey:
    """Host (lower case; PGHOST or the local socket when none), port (PGPORT or 5432) and database: not the user,
    so two users backing up one database share one identity. The server's roles and tablespaces
    (``globals_only``) are a source of their own beside the database's."""
    host = (conn.host or os.environ.get("PGHOST") or "").lower()
    port = conn.port or os.environ.get("PGPORT") or 5432
    canonical = f"postgresql://{host}:{port}/{conn.dbname}"
    if globals_only:
        return SourceKey(f"{conn.dbname}.globals", canonical + "#globals")
    return SourceKey(conn.dbname, canonical)
