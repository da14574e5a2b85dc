"""One SQL statement through ``psql``: what the engine, the restore target and a drill's drop run on a server.

``-w``: a missing password is an error that says where to put one, never a prompt that hangs a cron job. Rows
come back as text, fields split on the unit separator (which no identifier or setting holds).
"""

from __future__ import annotations

from dbkeeper import proc
from dbkeeper.engines.postgres.clients import pick
from dbkeeper.engines.postgres.conn import PgConn
from dbkeeper.engines.postgres.errors import classify
from dbkeeper.errors import ToolError

_SEP = "\x1f"


def query(conn: PgConn, sql: str, *, pg_bin: str | None = None, doing: str = "query") -> list[list[str]]:
    """Run ``sql`` in ``conn``'s database; a failure is classified (see errors.py) as ``doing`` failing."""
    argv = [pick("psql", None, pg_bin).path, "-X", "-w", "-q", "-A", "-t", "-F", _SEP, "-v", "ON_ERROR_STOP=1"]
    try:
        out = proc.run([*argv, "-c", sql], env=conn.env(), timeout=600)
    except ToolError as exc:
        raise classify(exc, conn, doing) from exc
    return [line.split(_SEP) for line in out.splitlines() if line]
