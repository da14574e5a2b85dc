"""Backup histories for retention, prune and copy tests: real backups, and many more planted from one of them.

``real_backup`` runs the real pipeline on a small SQLite database with the clock set to a given time.
``plant`` writes another backup through the real Store from such a template: the same data bytes under a new
name, a sidecar and a manifest that differ only in name and time. Planted backups verify like real ones (the
data is a real backup; the checks never look at the name), so 400 days of history take a second, not minutes.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dbkeeper.engines import engine_for
from dbkeeper.pipeline import BackupOptions, run_backup
from dbkeeper.repo import Repository, names
from dbkeeper.repo.manifest import Manifest, iso
from dbkeeper.storage.local import LocalStore
from helpers import make_sqlite_app

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # a Friday in ISO week 48


def at(text: str) -> datetime:
    """'2026-11-27' (02:00) or '2026-11-27 14:00', in UTC."""
    return datetime.strptime(text if " " in text else f"{text} 02:00", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Template:
    manifest: Manifest
    data: bytes


def small_app(path: Path) -> Path:
    return make_sqlite_app(path, users=30, sessions=20)


SOURCE = "app"  # the source id of the histories here, as a config's [[sources]] name


def real_backup(
    store: LocalStore, db: Path, when: datetime, options: BackupOptions | None = None, source: str = SOURCE
) -> Template:
    doc = run_backup(engine_for(str(db)), Repository(store), source, options or BackupOptions(), clock=lambda: when)
    return Template(doc, store.local_path(doc.name).read_bytes())


def plant(
    store: LocalStore, template: Template, when: datetime, database: str | None = None, source: str | None = None
) -> str:
    """Another backup like ``template`` made at ``when`` (of another database or source if given); its name."""
    db = database or template.manifest.database
    source_id = source or template.manifest.source_id or SOURCE
    parsed = names.parse(template.manifest.name)
    assert parsed is not None
    name = names.new_name(source_id, db, when, parsed.extension).name
    stamp = iso(when)
    doc = dataclasses.replace(
        template.manifest,
        source_id=source_id,
        database=db,
        file=names.basename(name),
        created_at=stamp,
        completed_at=stamp,
    )
    store.put(name, [template.data])
    store.put(names.sidecar(name), [names.sha256_line(doc.sha256, name)])
    store.put(names.manifest(name), [doc.to_json()])
    return name


def daily(store: LocalStore, template: Template, last: str, count: int, database: str | None = None) -> list[str]:
    """Backups at 02:00 on ``count`` consecutive days ending on ``last``; names newest first."""
    end = at(last)
    return [plant(store, template, end - timedelta(days=n), database) for n in range(count)]


def name_at(text: str, database: str = "app", ext: str = ".db.gz", source: str = SOURCE) -> str:
    return names.new_name(source, database, at(text), ext).name


def flip_byte(path: Path) -> None:
    """Damage a file without changing its size: the catalog still calls it ok, verify does not."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def files(store: LocalStore) -> list[str]:
    """Every file in the store, as object names (``app/app_….db.gz``)."""
    if not store.root.exists():
        return []
    return sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file())


def triples(*set_names: str) -> list[str]:
    return sorted(part for n in set_names for part in names.files(n))


@contextmanager
def undeletable(path: Path) -> Iterator[None]:
    """Make ``path`` impossible to delete for real, even for root: ext4's immutable attribute (chattr +i).

    Skips the test where that cannot be done (no CAP_LINUX_IMMUTABLE, a file system without the attribute).
    """
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make a file undeletable here (chattr +i: {done.stderr.strip()})")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def snapshot(store: LocalStore) -> dict[str, tuple[int, int]]:
    """Every file with its size and mtime, to show that nothing changed."""
    return {
        p.relative_to(store.root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in store.root.rglob("*")
        if p.is_file()
    }
