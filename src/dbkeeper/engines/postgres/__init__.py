"""PostgreSQL, one job per module; layered bottom to top (pyproject.toml's import contract keeps it so):

- ``conn``: where a database is (PgConn from a URL, the libpq environment, its SourceKey) and SQL quoting;
- ``errors``: the runbook's error table, turning a client's stderr into a message and a fix;
- ``clients``: finding pg_dump, pg_dumpall, psql and pg_restore of the server's major version;
- ``psql``: one SQL statement through psql;
- ``dumpformat``: the one reader of pg_dump's plain format (row counts, trailer, TOC entries, --no-owner);
- ``archive``: the custom archive (checked through pg_restore's text, loaded by pg_restore --jobs);
- ``load``: feeding a plain dump to psql, in one session or two;
- ``target``: the restore target (a temporary database renamed into place, --drop-existing);
- ``engine``: PostgresEngine and PostgresGlobals, the Engine interface over all of the above.
"""

from dbkeeper.engines.postgres.conn import PgConn, pg_key, quote_ident, quote_literal
from dbkeeper.engines.postgres.dumpformat import PlainCheck
from dbkeeper.engines.postgres.engine import PgDump, PostgresEngine, PostgresGlobals, ServerInfo
from dbkeeper.engines.postgres.target import PgRestoreTarget

__all__ = [
    "PgConn",
    "PgDump",
    "PgRestoreTarget",
    "PlainCheck",
    "PostgresEngine",
    "PostgresGlobals",
    "ServerInfo",
    "pg_key",
    "quote_ident",
    "quote_literal",
]
