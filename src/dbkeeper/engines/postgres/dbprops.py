"""What belongs to a PostgreSQL database rather than to its dump: pg_dump without ``--create`` writes none of it.

Its locale provider and ICU locale, owner, comment, access privileges (ACL) and ``ALTER DATABASE … SET`` /
``ALTER ROLE … IN DATABASE … SET`` settings. A backup records them (``read`` at backup time, into the manifest's
``extra``); a restore gives them to the database it creates (``apply``), so that a restore to a new name comes
back as the source was, and a ``--drop-existing`` restore keeps what the replaced database had.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from dbkeeper.engines.interface import RestoreSpec
from dbkeeper.engines.postgres.conn import PgConn, quote_ident, quote_literal
from dbkeeper.engines.postgres.psql import query

_PRIVILEGES = {"C": "CREATE", "T": "TEMPORARY", "c": "CONNECT"}
_ACL_ITEM = re.compile(r'^(?P<grantee>"(?:[^"]|"")*"|[^=]*)=(?P<privs>[CTc*]*)/')
_LIST_SETTINGS = {"search_path", "temp_tablespaces", "local_preload_libraries", "session_preload_libraries"}


@dataclass(frozen=True)
class DbProps:
    locale_provider: str | None = None  # "libc" | "icu" | "builtin"
    icu_locale: str | None = None
    owner: str | None = None
    comment: str | None = None
    acl: str | None = None  # pg_database.datacl as text; None: the default privileges
    settings: tuple[tuple[str, str], ...] = ()  # (role or "" for every role, "name=value")

    @classmethod
    def of(cls, spec: RestoreSpec) -> DbProps:
        return cls(spec.locale_provider, spec.icu_locale, spec.owner, spec.comment, spec.acl, tuple(spec.settings))

    def to_extra(self) -> dict[str, Any]:
        return {
            "locale_provider": self.locale_provider,
            "icu_locale": self.icu_locale,
            "owner": self.owner,
            "comment": self.comment,
            "acl": self.acl,
            "settings": [list(s) for s in self.settings],
        }


def read(conn: PgConn, name: str, major: int, *, pg_bin: str | None = None) -> DbProps:
    """The properties of database ``name`` on ``conn``'s server."""
    if major >= 17:
        provider, icu = "d.datlocprovider", "d.datlocale"
    elif major >= 15:
        provider, icu = "d.datlocprovider", "d.daticulocale"
    else:
        provider, icu = "'c'", "NULL"
    sql = (
        f"SELECT {provider}, coalesce({icu}, ''), pg_get_userbyid(d.datdba),"
        " coalesce(shobj_description(d.oid, 'pg_database'), ''), coalesce(d.datacl::text, ''),"
        " (SELECT coalesce(json_agg(json_build_array(coalesce(r.rolname, ''), s)), '[]')"
        "  FROM pg_db_role_setting x LEFT JOIN pg_roles r ON r.oid = x.setrole, unnest(x.setconfig) s"
        "  WHERE x.setdatabase = d.oid)"
        f" FROM pg_database d WHERE d.datname = {quote_literal(name)}"
    )
    rows = query(conn.with_db("postgres"), sql, pg_bin=pg_bin, doing=f"reading the properties of {name}")
    if not rows:
        return DbProps()
    loc, icu_locale, owner, comment, acl, settings = rows[0]
    return DbProps(
        {"c": "libc", "i": "icu", "b": "builtin"}.get(loc),
        icu_locale or None,
        owner or None,
        comment or None,
        acl or None,
        tuple((str(r), str(s)) for r, s in json.loads(settings)),
    )


def statements(name: str, props: DbProps, *, with_roles: bool = True) -> list[str]:
    """SQL that gives database ``name`` the properties (``with_roles`` False: not the owner, the grants and the
    per-role settings, for a restore onto a server that lacks the roles: ``--no-owner``)."""
    db = quote_ident(name)
    out = []
    if props.owner and with_roles:
        out.append(f"ALTER DATABASE {db} OWNER TO {quote_ident(props.owner)}")
    if props.comment:
        out.append(f"COMMENT ON DATABASE {db} IS {quote_literal(props.comment)}")
    if props.acl and with_roles:
        out.append(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC")
        for item in props.acl.strip("{}").split(","):
            m = _ACL_ITEM.match(item.strip())
            if not m:
                continue
            grantee = m["grantee"]
            if grantee.startswith('"'):
                grantee = grantee[1:-1].replace('""', '"')
            privs = m["privs"]
            granted = [_PRIVILEGES[p] for p in privs if p in _PRIVILEGES]
            if not granted:
                continue
            who = "PUBLIC" if not grantee else quote_ident(grantee)
            option = " WITH GRANT OPTION" if "*" in privs and grantee else ""
            out.append(f"GRANT {', '.join(granted)} ON DATABASE {db} TO {who}{option}")
    for role, setting in props.settings:
        if role and not with_roles:
            continue
        key, _, value = setting.partition("=")
        what = f"ALTER ROLE {quote_ident(role)} IN DATABASE {db}" if role else f"ALTER DATABASE {db}"
        out.append(f"{what} SET {quote_ident(key)} TO {setting_value(key, value)}")
    return out


def setting_value(name: str, value: str) -> str:
    """A stored setting as SQL: list settings element by element (as pg_dump does), others as one literal."""
    if name.lower() not in _LIST_SETTINGS:
        return quote_literal(value)
    items = []
    for item in value.split(","):
        item = item.strip()
        if len(item) >= 2 and item.startswith('"') and item.endswith('"'):
            item = item[1:-1].replace('""', '"')
        items.append(quote_literal(item))
    return ", ".join(items)


def role_names(conn: PgConn, *, pg_bin: str | None = None) -> list[str]:
    """The names of the server's roles (not the built-in ``pg_*``): what a drill's sandbox creates so that the
    backup's owners and grants load as they are. Names only: nothing about them is secret."""
    rows = query(
        conn.with_db("postgres"),
        "SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1",
        pg_bin=pg_bin,
        doing="listing the server's roles",
    )
    return [r[0] for r in rows]
