"""What a store holds, derived from listing it every time (no index to drift).

Like barman-cloud's ``unreadable_backups``, a damaged entry is reported, never fatal: ``list`` shows a data file
without a manifest as incomplete and a manifest that does not fit its file as broken.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from dbkeeper import manifest
from dbkeeper.errors import DbkeeperError, NotFound, UsageError
from dbkeeper.manifest import MANIFEST_SUFFIX, SHA256_SUFFIX, Manifest
from dbkeeper.storage import Store, open_store

OK, INCOMPLETE, BROKEN = "ok", "incomplete", "broken"


@dataclass
class Entry:
    name: str
    database: str
    created: datetime
    size: int
    status: str
    problem: str | None = None
    manifest: Manifest | None = None

    @property
    def good(self) -> bool:
        return self.status == OK


def scan(store: Store, database: str | None = None) -> list[Entry]:
    """Every backup in the store, oldest first; ``database`` keeps only that database's."""
    objects = {o.name: o for o in store.list()}
    entries: list[Entry] = []
    for name, obj in objects.items():
        if name.endswith((SHA256_SUFFIX, MANIFEST_SUFFIX)):
            continue
        parsed = manifest.parse_name(name)
        if parsed is None:
            continue
        if database is not None and parsed.database != database:
            continue
        entry = Entry(name, parsed.database, parsed.stamp, obj.size, OK)
        if name + MANIFEST_SUFFIX not in objects:
            entry.status, entry.problem = INCOMPLETE, "no manifest: the backup never completed"
        else:
            _check(store, entry, objects)
        entries.append(entry)
    # Manifests whose data file is gone.
    for name in objects:
        if name.endswith(MANIFEST_SUFFIX):
            data = name[: -len(MANIFEST_SUFFIX)]
            parsed = manifest.parse_name(data)
            if parsed and data not in objects and (database is None or parsed.database == database):
                entries.append(Entry(data, parsed.database, parsed.stamp, 0, BROKEN, "the data file is missing"))
    return sorted(entries, key=lambda e: (e.created, e.name))


def _check(store: Store, entry: Entry, objects: Mapping[str, object]) -> None:
    try:
        with store.open(entry.name + MANIFEST_SUFFIX) as f:
            doc = Manifest.from_json(f.read())
    except (ValueError, DbkeeperError) as exc:
        entry.status, entry.problem = BROKEN, f"unreadable manifest: {exc}"
        return
    entry.manifest = doc
    entry.created = doc.created
    if doc.file != entry.name:
        entry.status, entry.problem = BROKEN, f"the manifest describes {doc.file}"
    elif doc.size_bytes != entry.size:
        entry.status, entry.problem = (
            BROKEN,
            f"size is {entry.size} bytes, the manifest says {doc.size_bytes}",
        )
    elif entry.name + SHA256_SUFFIX not in objects:
        entry.status, entry.problem = BROKEN, "the .sha256 sidecar is missing"


def newest_good(entries: list[Entry]) -> Entry | None:
    """The newest good entry of one database's ``entries`` (oldest first, as ``scan`` returns them)."""
    good = [e for e in entries if e.good]
    return good[-1] if good else None


def broken_since_good(entries: list[Entry]) -> list[Entry]:
    """One database's broken or incomplete entries newer than its newest good one (all of them if none is)."""
    newest = newest_good(entries)
    return [e for e in entries if not e.good and (newest is None or e.created > newest.created)]


def latest(entries: list[Entry], database: str | None = None) -> Entry:
    good = [e for e in entries if e.good and (database is None or e.database == database)]
    if not good:
        raise NotFound(
            "no complete backup found" + (f" of {database}" if database else ""),
            "run `dbkeeper backup` first, or check --store",
        )
    if database is None and len({e.database for e in good}) > 1:
        names = ", ".join(sorted({e.database for e in good}))
        raise UsageError(f"the store holds several databases ({names})", "say which with --database NAME")
    return good[-1]


def resolve(
    spec: str, store_url: str, database: str | None = None, opener: Callable[[str], Store] = open_store
) -> tuple[Store, str]:
    """Where a BACKUP argument points: ``latest``, a name in the store, a local path, or ``s3://…/file``."""
    if spec == "latest":
        store = opener(store_url)
        return store, latest(scan(store, database), database).name
    if spec.startswith("s3://"):
        prefix, _, name = spec.rpartition("/")
        return opener(prefix), name
    path = Path(spec)
    if os.sep in spec or "/" in spec or path.exists():
        if not path.exists():
            raise NotFound(f"{spec} does not exist")
        return opener(str(path.parent)), path.name
    return opener(store_url), spec
