"""Source ids: what every backup in a store belongs to, unique in the store.

A source's id is the name the config gives it (``[[sources]] name``, or ``backup --name``), else one derived from
the whole source: host, port and database for PostgreSQL, the real path of a SQLite file. Never the database name
alone: ``casino`` on two servers, ``app db`` and ``app_db``, or ``a/app.db`` and ``b/app.db`` are different
sources with their own history, retention group and ``latest``.

A derived id is readable and stable: the parts a person recognises, then eight hex digits of a SHA-256 of the
source's canonical key (engines.SourceKey), e.g. ``db1-5432-casino-3fa2b1c0`` or ``app-91c04e7d``.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

from dbkeeper.engines import SourceKey
from dbkeeper.errors import UsageError
from dbkeeper.repo.names import SOURCE_ID_RE


def check_id(name: str, where: str = "the source name") -> str:
    """A source name given by the user, checked to be usable as an id (and a directory name)."""
    if not SOURCE_ID_RE.match(name):
        raise UsageError(
            f"{where} {name!r} cannot name a source in a store",
            "use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def derive_id(key: SourceKey) -> str:
    """The id of a source the config does not name."""
    digest = hashlib.sha256(key.canonical.encode()).hexdigest()[:8]
    if key.canonical.startswith("postgresql://"):
        parts = urlsplit(key.canonical)
        try:
            host, port = parts.hostname or "local", parts.port or 5432
        except ValueError:  # a Unix socket directory as the host
            host, port = "local", 5432
        readable = f"{host}-{port}-{key.readable}"
    else:
        readable = key.readable
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", readable).strip("._-")[:80] or "source"
    return f"{slug}-{digest}"


def source_id(key: SourceKey, name: str | None = None) -> str:
    """The id a backup of the source with ``key`` is stored under: ``name`` if given, else derived."""
    return check_id(name) if name else derive_id(key)
