"""The runbook's error table: what libpq, pg_dump, pg_restore and psql say, what it means, and what to do.

A failed client's stderr is matched against known causes; the error raised carries one line naming the cause
(with the server's own words in brackets) and a ``Try:`` hint. Unknown causes keep the tool's last line.
"""

from __future__ import annotations

import re

from dbkeeper.engines.postgres.conn import PgConn
from dbkeeper.errors import DbkeeperError, NoSpace, RestoreError, SourceError, ToolError

_CAUSES: list[tuple[str, type[DbkeeperError], str, str]] = [
    (
        r"password authentication failed|authentication failed for user",
        SourceError,
        "authentication failed for {user} at {where}",
        "check the password in PGPASSWORD or ~/.pgpass (mode 0600: host:port:db:user:password)",
    ),
    (
        r"no password supplied|fe_sendauth",
        SourceError,
        "the server at {where} wants a password and none was given",
        "put it in ~/.pgpass (mode 0600) or PGPASSWORD; dbkeeper never prompts",
    ),
    (
        r"could not translate host name|Name or service not known|nodename nor servname",
        SourceError,
        "unknown host {where}",
        "check the host name in the URL or PGHOST",
    ),
    (
        r"Connection refused|could not connect to server|connection to server .* failed: (?!FATAL)"
        r"|timeout expired|No route to host",
        SourceError,
        "cannot reach PostgreSQL at {where}",
        "check that the server runs, the host and port (5432?), and listen_addresses / firewall",
    ),
    (
        r"database \"[^\"]+\" does not exist",
        SourceError,
        "database {db} does not exist at {where}",
        "check the name; `psql -l` lists the databases",
    ),
    (
        r"no pg_hba.conf entry",
        SourceError,
        "the server at {where} does not allow {user} to connect from here",
        "add a pg_hba.conf line for this host and user, then reload the server",
    ),
    (
        r"server version mismatch",
        ToolError,
        "pg_dump is older than the server at {where}",
        "install the client of the server's major version or pass --pg-bin DIR",
    ),
    (
        r"No space left on device|could not extend file|disk full",
        NoSpace,
        "the disk filled up",
        "free space (on the server for a restore, on the store for a backup) and retry",
    ),
    (
        r"violates foreign key constraint",
        RestoreError,
        "a foreign key does not hold for the data in the backup",
        "pg_dump adds foreign keys after all the data, so the source itself holds rows that break this key:"
        " fix them there and back up again (a data-only load may use --disable-triggers, as superuser)",
    ),
    (
        r"invalid byte sequence for encoding|has no equivalent in encoding|character with byte sequence",
        RestoreError,
        "the data does not fit the target database's encoding",
        "restore into a database with the source's encoding (dbkeeper creates it with the manifest's)",
    ),
    (
        r"role \"[^\"]+\" does not exist",
        RestoreError,
        "the dump names a role the target server lacks",
        "create the role (restore the globals backup first) or pass --no-owner",
    ),
    (
        r"permission denied to create database|must be owner|permission denied",
        RestoreError,
        "permission denied for {user} at {where}",
        "use a role with CREATEDB (and ownership of the target to replace it), or a superuser",
    ),
    (
        r"permission denied to set parameter \"session_replication_role\"",
        RestoreError,
        "--disable-triggers needs a superuser",
        "restore as a superuser, or without --disable-triggers",
    ),
]


def classify(exc: ToolError, conn: PgConn, doing: str) -> DbkeeperError:
    """Turn a failed client's stderr into the runbook's message and fix; unknown causes keep the quote."""
    text = exc.stderr or exc.message
    for pattern, kind, message, hint in sorted(_CAUSES, key=lambda c: "session_replication_role" not in c[0]):
        if re.search(pattern, text, re.IGNORECASE):
            what = message.format(user=conn.user or "the user", where=conn.where, db=conn.dbname)
            detail = _first_error_line(text)
            return kind(f"{doing}: {what}" + (f" ({detail})" if detail else ""), hint)
    detail = _first_error_line(text)
    quoted = f" ({detail})" if detail and detail not in exc.message else ""
    return type(exc)(f"{doing}: {exc.message}{quoted}", exc.hint, exc.stderr)


def _first_error_line(stderr: str) -> str:
    for line in stderr.splitlines():
        line = line.strip()
        if re.search(r"\b(ERROR|FATAL|error):", line):
            return re.sub(r"^.*?\b(ERROR|FATAL|error):\s*", "", line)[:300]
    return ""
