"""Helpers for tests that back up and restore real PostgreSQL databases through dbkeeper."""

from __future__ import annotations

import re
import subprocess

from pg import Cluster


def unquote_qualified(name: str) -> tuple[str, str]:
    """Split a qualified name as pg_dump prints it (quoted parts unescaped) into (schema, table)."""
    parts = re.findall(r'"((?:[^"]|"")*)"|([^".]+)', name)
    idents = [q.replace('""', '"') if q else bare for q, bare in parts]
    assert len(idents) == 2, name
    return idents[0], idents[1]


def comparable_dump(cluster: Cluster, db: str, pg_dump: str | None = None) -> list[str]:
    """pg_dump of ``db`` without the lines that differ between runs (the \\restrict key, version comments)."""
    out = subprocess.run(
        [pg_dump or cluster.tool("pg_dump"), "-d", db], env=cluster.env(), capture_output=True, text=True, check=True
    ).stdout
    return [
        line
        for line in out.splitlines()
        if not line.startswith(("\\restrict ", "\\unrestrict ", "-- Dumped from", "-- Dumped by"))
    ]


def databases(cluster: Cluster) -> set[str]:
    return set(cluster.psql("SELECT datname FROM pg_database").split())


class TableLock:
    """``with TableLock(cluster, db, table):`` a session holding ACCESS EXCLUSIVE on ``table``, so a pg_dump of
    ``db`` waits until the block ends: a real slow source, held as long as a test needs."""

    def __init__(self, cluster: Cluster, db: str, table: str) -> None:
        self._argv = [cluster.tool("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db]
        self._env = cluster.env()
        self._table = table

    def __enter__(self) -> TableLock:
        self._psql = subprocess.Popen(
            self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self._env, text=True
        )
        assert self._psql.stdin is not None and self._psql.stdout is not None
        self._psql.stdin.write(f"BEGIN; LOCK TABLE {self._table} IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n")
        self._psql.stdin.flush()
        assert self._psql.stdout.readline().strip() == "locked"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._psql.stdin is not None
        self._psql.stdin.write("COMMIT;\n")
        self._psql.stdin.close()
        self._psql.wait(timeout=30)
