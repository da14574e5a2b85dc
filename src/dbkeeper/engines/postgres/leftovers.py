"""What an interrupted restore leaves on a PostgreSQL server, found and removed on request (``dbkeeper cleanup``).

A restore loads into ``<target>_dbkeeper_tmp_<token>`` and, with ``--drop-existing``, renames the database it
replaces to ``<target>_dbkeeper_old_<token>`` for the moment between the two renames. A restore killed with
SIGKILL, or whose server stopped, cannot drop either. They are told apart here:

- a temporary database is a half-loaded copy nobody needs: removable once no session uses it (a running restore
  has its loader connected) and it is older than the caller's minimum age, judged by the creation time of its
  files where this role may call ``pg_stat_file`` (a superuser, or a role granted EXECUTE on it; for any other
  role its age is unknown). A restore killed while it replaced a database may have left that database refusing
  connections (``locked``): removing the temporary database lets it accept them again;
- a replaced database held a target's data: it is reported, never dropped. If its target is missing, it is the
  only copy of that data, and the fix is to rename it back (the message says how).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dbkeeper.engines.postgres.conn import PgConn, quote_ident, quote_literal
from dbkeeper.engines.postgres.psql import query

TEMP_MARK = "_dbkeeper_tmp_"
ASIDE_MARK = "_dbkeeper_old_"
TEMPORARY, REPLACED = "temporary database", "replaced database"
# A temporary database younger than this may be a restore's that is starting (its loader not yet connected).
MIN_AGE = timedelta(hours=1)


@dataclass(frozen=True)
class ServerLeftover:
    kind: str  # TEMPORARY | REPLACED
    name: str
    server: str  # where, for people
    size: int
    sessions: int  # connected now: a running restore's loader
    created: datetime | None  # None where this role may not read the server's files
    target: str | None = None  # for a replaced database: the database it was renamed from, if it is there
    locked: str | None = None  # for a temporary database: the target it left refusing connections

    def needs_a_look(self, now: datetime) -> bool:
        """Whether ``status`` reports it: a replaced database always (it holds a database's data); a temporary one
        unless a session uses it (a running restore) or it is younger than ``MIN_AGE`` (one starting)."""
        if self.kind == REPLACED:
            return True
        return not self.sessions and (self.created is None or now - self.created >= MIN_AGE)

    def fix(self) -> str:
        """What settles it, for people: the exact statement for a replaced database, the command for the rest."""
        if self.kind == REPLACED and self.target is None:
            return "rename it back (above), then `dbkeeper cleanup` for what else that restore left"
        if self.kind == REPLACED:
            return f"once sure the new {self.target} is right: DROP DATABASE {quote_ident(self.name)}"
        if self.created is None:
            return "`dbkeeper cleanup --older-than 0s` drops it (its age cannot be read with this role)"
        return "`dbkeeper cleanup` drops it"

    def describe(self) -> str:
        prefix = self.name.split(ASIDE_MARK)[0]
        if self.kind == REPLACED and self.target is None:
            # Names keep the target's first 40 characters only: a longer name is not known here in full.
            short = len(prefix) < 40
            target = quote_ident(prefix) if short else f"the name that begins with {prefix}"
            return (
                f"{self.kind} {self.name} on {self.server}: the only copy of {prefix}{'' if short else '…'}, whose"
                " replacement never"
                f" arrived; put it back with ALTER DATABASE {quote_ident(self.name)} RENAME TO {target}"
                " (and WITH ALLOW_CONNECTIONS true)"
            )
        if self.kind == REPLACED:
            return f"{self.kind} {self.name} on {self.server}: the old copy of {self.target}; drop it when sure"
        locked = f", and {self.locked} left refusing connections" if self.locked else ""
        return f"{self.kind} {self.name} on {self.server}{locked}"


def _like(mark: str) -> str:
    return quote_literal("%" + mark.replace("_", "\\_") + "%")


def find(conn: PgConn, *, pg_bin: str | None = None) -> list[ServerLeftover]:
    """Every temporary and replaced database of dbkeeper's on ``conn``'s server."""
    admin = conn.with_db("postgres")
    # pg_stat_file is refused at the start of any statement that names it, taken branch or not: asked first.
    may_read = query(
        admin,
        "SELECT has_function_privilege('pg_catalog.pg_stat_file(text, boolean)', 'EXECUTE')",
        pg_bin=pg_bin,
        doing="looking for leftovers",
    ) == [["t"]]
    created = (
        "extract(epoch FROM (pg_stat_file('base/' || d.oid || '/PG_VERSION', true)).modification)"
        if may_read
        else "NULL"
    )
    sql = (
        "SELECT d.datname, pg_database_size(d.oid),"
        " (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname),"
        f" {created},"
        " (SELECT min(t.datname) FROM pg_database t"
        f" WHERE left(t.datname, 40) = split_part(d.datname, {quote_literal(ASIDE_MARK)}, 1)"
        f" AND t.datname NOT LIKE {_like(TEMP_MARK)} AND t.datname NOT LIKE {_like(ASIDE_MARK)}),"
        " (SELECT min(x.datname) FROM pg_database x WHERE NOT x.datallowconn AND NOT x.datistemplate"
        f" AND left(x.datname, 40) = split_part(d.datname, {quote_literal(TEMP_MARK)}, 1)"
        f" AND x.datname NOT LIKE {_like(TEMP_MARK)} AND x.datname NOT LIKE {_like(ASIDE_MARK)})"
        f" FROM pg_database d WHERE d.datname LIKE {_like(TEMP_MARK)} OR d.datname LIKE {_like(ASIDE_MARK)}"
        " ORDER BY d.datname"
    )
    out = []
    rows = query(admin, sql, pg_bin=pg_bin, doing="looking for leftovers")
    for name, size, sessions, created, target, locked in rows:
        out.append(
            ServerLeftover(
                kind=TEMPORARY if TEMP_MARK in name else REPLACED,
                name=name,
                server=conn.where,
                size=int(size),
                sessions=int(sessions),
                created=datetime.fromtimestamp(float(created), UTC) if created else None,
                target=(target or None) if ASIDE_MARK in name else None,
                locked=(locked or None) if TEMP_MARK in name else None,
            )
        )
    return out


def drop(conn: PgConn, leftover: ServerLeftover, *, pg_bin: str | None = None) -> None:
    """Drop a temporary database (never a replaced one), and let the target it left locked accept connections
    again; fails, changing nothing, if a session connected since."""
    assert leftover.kind == TEMPORARY and TEMP_MARK in leftover.name
    admin = conn.with_db("postgres")
    query(
        admin, f"DROP DATABASE IF EXISTS {quote_ident(leftover.name)}", pg_bin=pg_bin, doing=f"dropping {leftover.name}"
    )
    if leftover.locked:
        query(
            admin,
            f"ALTER DATABASE {quote_ident(leftover.locked)} WITH ALLOW_CONNECTIONS true",
            pg_bin=pg_bin,
            doing=f"letting {leftover.locked} accept connections again",
        )
