"""The ledger: the oracle a point-in-time drill is judged against.

``dbkeeper ledger SOURCE`` commits one row every few seconds into ``dbkeeper.ledger`` in the source database:
an id and ``clock_timestamp()`` at the insert. Recovery to a time T compares *commit* times with T, and a row's
commit comes after its ``at``; so after a correct recovery to T:

- no row has ``at`` after T (its commit came later still: recovery went past the target);
- the newest row is at most one interval (plus slack for a slow commit) before T, as long as the ledger was
  being written at T (else the drill cannot prove the point it reached, and says so: that is a failure too,
  of the oracle, and ``status`` shows it as the last PITR drill's).

The ledger stays small: each tick deletes the rows older than ``KEEP``. It lives in its own schema so that it
never mixes with the application's tables (logical backups carry it along; it is a few kilobytes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from dbkeeper.engines.postgres.conn import PgConn
from dbkeeper.engines.postgres.psql import query

SCHEMA = "dbkeeper"
TABLE = f"{SCHEMA}.ledger"
KEEP = timedelta(days=35)
SLACK = timedelta(seconds=5)

SETUP_SQL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    every_s double precision NOT NULL CHECK (every_s > 0)
);
COMMENT ON TABLE {TABLE} IS 'written by dbkeeper ledger: the oracle of point-in-time recovery drills';
"""


@dataclass(frozen=True)
class Tick:
    id: int
    at: datetime


def setup(conn: PgConn, pg_bin: str | None = None) -> None:
    query(conn, SETUP_SQL, pg_bin=pg_bin, doing="creating the ledger table")


def tick(conn: PgConn, every: timedelta, pg_bin: str | None = None) -> Tick:
    """Commit one ledger row; return it once the server acknowledged the commit."""
    rows = query(
        conn,
        f"WITH old AS (DELETE FROM {TABLE} WHERE at < now() - interval '{int(KEEP.total_seconds())} seconds') "
        f"INSERT INTO {TABLE} (every_s) VALUES ({every.total_seconds():.3f}) "
        "RETURNING id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')",
        pg_bin=pg_bin,
        doing="writing the ledger",
    )
    return Tick(int(rows[0][0]), _utc(rows[0][1]))


@dataclass(frozen=True)
class LedgerRow:
    id: int
    at: datetime
    every: timedelta


def rows_near(sql: Callable[[str], list[list[str]]], target: datetime) -> tuple[list[LedgerRow], bool]:
    """The ledger rows from a day before ``target`` on, read through ``sql`` (a query in the database that holds
    the ledger: in a drill, the recovered server paused at the target), and whether the table exists at all."""
    if sql(f"SELECT to_regclass('{TABLE}') IS NOT NULL")[0][0] != "t":
        return [], False
    since = (target - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S.%f+00")
    rows = sql(
        f"SELECT id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), every_s FROM {TABLE} "
        f"WHERE at >= '{since}' ORDER BY at, id"
    )
    return [LedgerRow(int(r[0]), _utc(r[1]), timedelta(seconds=float(r[2]))) for r in rows], True


def find_database(sql_in: Callable[[str, str], list[list[str]]]) -> str | None:
    """Which database of a cluster holds the ledger (``sql_in(query, database)``); None when none does."""
    for (name,) in sql_in(
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname", "postgres"
    ):
        if sql_in(f"SELECT to_regclass('{TABLE}') IS NOT NULL", name)[0][0] == "t":
            return name
    return None


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    newest: LedgerRow | None = None  # the point recovery provably reached


def judge(rows: list[LedgerRow], target: datetime, exists: bool = True) -> Verdict:
    """Whether a recovery to ``target`` is proven by the ledger rows it holds."""
    if not exists:
        return Verdict(False, f"no {TABLE} table in the recovered database: run `dbkeeper ledger` on the source")
    after = [r for r in rows if r.at > target]
    if after:
        first = after[0]
        return Verdict(
            False,
            f"recovered past the target: ledger row {first.id} was written at {_fmt(first.at)}, after {_fmt(target)}",
        )
    if not rows:
        return Verdict(False, f"no ledger row in the day before {_fmt(target)}: the ledger was not being written")
    newest = rows[-1]
    allowed = newest.every + max(SLACK, newest.every)
    if target - newest.at > allowed:
        return Verdict(
            False,
            f"the newest ledger row is from {_fmt(newest.at)}, {(target - newest.at).total_seconds():.1f} s before the"
            f" target, though the ledger writes every {newest.every.total_seconds():g} s: recovery stopped early, or"
            " the ledger was not being written then",
            newest,
        )
    return Verdict(
        True,
        f"ledger row {newest.id} of {_fmt(newest.at)} is there, none after {_fmt(target)}",
        newest,
    )


def _utc(text: str) -> datetime:
    from datetime import UTC

    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
