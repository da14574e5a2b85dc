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
