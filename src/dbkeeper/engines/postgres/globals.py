"""Restoring a server's roles and tablespaces (``restore --globals``) from a ``pg_dumpall --globals-only`` backup.

Additive only: a role or tablespace that already exists on the target is left exactly as it is (its password,
attributes, settings and memberships untouched); one that is missing is created with what the file says about
it. Nothing is ever dropped or revoked. The file is read by the one lexer (dumpformat.globals_statements), which
refuses anything such a file never holds; whoever can write the store is not trusted, so roles that would come
with surprising powers or no password are refused by name unless asked for:

- a LOGIN role without a password (pg_dumpall --no-role-passwords, or a role that had none) could never log in
  with one, which an application notices only at its first connection: ``allow_no_password``;
- a role that would be SUPERUSER, REPLICATION or BYPASSRLS, or a member of a predefined role that reaches the
  server's files or programs: ``allow_superuser``.

The roles, their settings and memberships go in one transaction (all or none); tablespaces cannot be created in a
transaction block, so each is created on its own afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dbkeeper import proc
from dbkeeper.engines.postgres.clients import pick
from dbkeeper.engines.postgres.conn import PgConn
from dbkeeper.engines.postgres.dumpformat import DumpNotData, globals_statements, globals_subject
from dbkeeper.engines.postgres.errors import classify
from dbkeeper.engines.postgres.psql import query
from dbkeeper.errors import ContentRefused, RestoreError, ToolError

_POWERFUL = re.compile(rb"\b(?<!NO)(?:SUPERUSER|REPLICATION|BYPASSRLS)\b")
_LOGIN = re.compile(rb"\b(?<!NO)LOGIN\b")
_PASSWORD = re.compile(rb"\bPASSWORD '")
_SERVER_ROLES = re.compile(
    rb"GRANT (?:pg_execute_server_program|pg_read_server_files|pg_write_server_files|pg_signal_backend|"
    rb"pg_checkpoint|pg_create_subscription|pg_use_reserved_connections) TO "
)


@dataclass
class GlobalsResult:
    """What ``apply`` did: the roles and tablespaces it created, and those it found already there."""

    created_roles: list[str] = field(default_factory=list)
    existing_roles: list[str] = field(default_factory=list)
    created_tablespaces: list[str] = field(default_factory=list)
    existing_tablespaces: list[str] = field(default_factory=list)


def apply(
    conn: PgConn,
    data: bytes,
    *,
    allow_no_password: bool = False,
    allow_superuser: bool = False,
    pg_bin: str | None = None,
) -> GlobalsResult:
    """Create the missing roles and tablespaces of the globals file ``data`` on ``conn``'s server (see above)."""
    try:
        statements = globals_statements(data)
    except DumpNotData as exc:
        raise ContentRefused(
            f"the globals file is not only roles and tablespaces: {exc}",
            "pg_dumpall --globals-only never writes that: the file was changed after the backup; use another",
        ) from None
    roles = {globals_subject(k, s) for k, s in statements if k == "create role"}
    spaces = {globals_subject(k, s) for k, s in statements if k == "create tablespace"}
    have_roles = _existing(conn, "SELECT rolname FROM pg_roles", pg_bin)
    have_spaces = _existing(conn, "SELECT spcname FROM pg_tablespace", pg_bin)
    new_roles = roles - have_roles
    result = GlobalsResult(
        created_roles=sorted(new_roles),
        existing_roles=sorted(roles & have_roles),
        created_tablespaces=sorted(spaces - have_spaces),
        existing_tablespaces=sorted(spaces & have_spaces),
    )
    _check_surprises(statements, new_roles, allow_no_password, allow_superuser)
    head = [s for k, s in statements if k == "set"]
    role_sql = [
        s
        for k, s in statements
        if k in ("create role", "alter role", "grant role", "comment role") and globals_subject(k, s) in new_roles
    ]
    if role_sql:
        _run(conn, [b"BEGIN;", *head, *role_sql, b"COMMIT;"], pg_bin, "creating the missing roles")
    for name in result.created_tablespaces:
        mine = [s for k, s in statements if k in ("create tablespace", "tablespace") and globals_subject(k, s) == name]
        for statement in mine:
            _run(conn, [*head, statement], pg_bin, f"creating tablespace {name}")
    return result


def _existing(conn: PgConn, sql: str, pg_bin: str | None) -> set[str]:
    return {row[0] for row in query(conn, sql, pg_bin=pg_bin, doing="reading the server's roles and tablespaces")}


def _check_surprises(
    statements: list[tuple[str, bytes]], new_roles: set[str], allow_no_password: bool, allow_superuser: bool
) -> None:
    attributes: dict[str, bytes] = {}
    for kind, statement in statements:
        if kind == "alter role" and statement.startswith(b"ALTER ROLE ") and b" WITH " in statement:
            name = globals_subject(kind, statement)
            if name in new_roles:
                attributes[name] = attributes.get(name, b"") + statement.split(b" WITH ", 1)[1]
    powerful = sorted(n for n, a in attributes.items() if _POWERFUL.search(_unquoted(a)))
    powerful += sorted(
        globals_subject(k, s)
        for k, s in statements
        if k == "grant role" and _SERVER_ROLES.match(s) and globals_subject(k, s) in new_roles
    )
    if powerful and not allow_superuser:
        raise RestoreError(
            f"the globals would create {len(powerful)} role(s) with power over the server, e.g. {powerful[0]}"
            " (SUPERUSER, REPLICATION, BYPASSRLS, or a member of a role that reaches its files or programs);"
            " nothing was created",
            "check the backup is yours (sign backups: --verify-key), then pass --allow-superuser",
        )
    no_password = sorted(n for n, a in attributes.items() if _LOGIN.search(_unquoted(a)) and not _PASSWORD.search(a))
    if no_password and not allow_no_password:
        raise RestoreError(
            f"the globals would create {len(no_password)} LOGIN role(s) without a password, e.g. {no_password[0]}:"
            " they could not log in with one; nothing was created",
            "back up the globals as a superuser (pg_authid holds the passwords), or pass --allow-no-password and"
            " set them afterwards (ALTER ROLE … PASSWORD)",
        )


def _unquoted(attributes: bytes) -> bytes:
    """The role attributes without their quoted values (a password hash may spell anything)."""
    return re.sub(rb"'(?:[^']|'')*'", b"''", attributes)


def _run(conn: PgConn, statements: list[bytes], pg_bin: str | None, doing: str) -> None:
    psql = pick("psql", None, pg_bin).path
    argv = [psql, "-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]
    try:
        proc.run(argv, env=conn.env(), input=b"\n".join(statements) + b"\n", timeout=600)
    except ToolError as exc:
        raise classify(exc, conn, doing) from exc
