"""The repository: the one layer that names, writes, reads and deletes backup sets in a store.

It sits over a Store as restic's repository sits over its backend: commands and runs ask it for a catalog, a
manifest, a set's bytes, a new set's name, a commit or a deletion, and never build an object name themselves.
``names`` is the layout, ``manifest`` the schema, ``sources`` the source ids, ``catalog`` the scan.

Commit (``commit``): the data under its final name, then the ``.sha256`` sidecar, then (when signing) the
``.json.sig`` signature over the manifest's exact bytes, then the manifest, each with
``if_absent``, so a set never replaces another, whoever else writes the store: a second writer that picked the
same name fails with AlreadyExists and removes nothing (not even its own data file, which on an endpoint without
conditional writes may be the other writer's by then). Until the manifest is there, the set is
incomplete and counts for nothing. A failed commit removes the objects it wrote itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO

from dbkeeper.errors import AlreadyExists, DbkeeperError, NoSuchBackup, NotFound, StoreMissing
from dbkeeper.repo import catalog, drills, names
from dbkeeper.repo.catalog import Catalog, Entry, latest, scan
from dbkeeper.repo.drills import DrillRecord
from dbkeeper.repo.manifest import MAX_BYTES, Manifest
from dbkeeper.storage import Leftover, Store

if TYPE_CHECKING:
    from dbkeeper.signing import Signer, VerifyKey

MAX_SEQ = 999
LEFTOVER_AGE = {"temporary file": timedelta(hours=1), "unfinished upload": timedelta(hours=24)}


@dataclass(frozen=True)
class LeftoverState:
    """A leftover as ``list``, ``status`` and ``cleanup`` see it: stale ones may be removed."""

    leftover: Leftover
    age: timedelta
    min_age: timedelta = timedelta(hours=24)  # younger ones may belong to a write still running elsewhere

    @property
    def stale(self) -> bool:
        return not self.leftover.in_use and self.age >= self.min_age

    def describe(self) -> str:
        from dbkeeper.units import format_duration, human_size

        state = "in use by a running write" if self.leftover.in_use else f"{format_duration(self.age)} old"
        return f"{self.leftover.kind} for {self.leftover.name} ({human_size(self.leftover.size)}, {state})"


class Repository:
    """Backup sets in one store."""

    def __init__(self, store: Store, verify_key: VerifyKey | None = None) -> None:
        self.store = store
        self.url = store.url
        # With a verify key, a set whose manifest carries no good signature by it is broken ("unsigned",
        # "bad signature"): whoever can write the store can write a whole set, sidecar and manifest included.
        self.verify_key = verify_key

    def describe(self, name: str) -> str:
        return self.store.describe(name)

    @property
    def is_local(self) -> bool:
        """True for a directory store, where reading a whole set first costs little next to a restore."""
        from dbkeeper.storage.local import LocalStore

        return isinstance(self.store, LocalStore)

    # -- reading -------------------------------------------------------------------------------------------
    def require_store(self) -> None:
        """StoreMissing (exit 2) when the store itself is not there: reading commands say so instead of calling
        a mistyped --store empty. (A backup creates its store; only a missing one is refused, an empty one is
        not.)"""
        if not self.store.exists():
            raise StoreMissing(
                f"store {self.url} does not exist",
                "check --store (or $DBKEEPER_STORE, the config's store); `dbkeeper backup` creates it",
            )

    def require_set(self, name: str) -> None:
        """NoSuchBackup (exit 2) when not one object of the set ``name`` is in the store: the command line named
        nothing there. (A set missing only some parts is damage, which the checks report.)"""
        try:
            listed = {o.name for o in self.store.list(name)}
        except StoreMissing:
            listed = set()
        if not any(part in listed for part in names.all_files(name)):
            where = self.url if self.store.exists() else f"{self.url} (which does not exist)"
            raise NoSuchBackup(
                f"no backup {name} in {where}",
                "`dbkeeper list` shows the backups there (give a name from it, a path, or latest); check --store",
            )

    def scan(self, now: datetime, *, source: str | None = None, database: str | None = None) -> Catalog:
        return scan(self.store, now, source=source, database=database, verify_key=self.verify_key)

    def latest(self, now: datetime, *, source: str | None = None, database: str | None = None) -> Entry:
        return latest(self.scan(now, source=source, database=database), source=source, database=database)

    def manifest_bytes(self, name: str) -> bytes:
        return self._read(names.manifest(name))

    def sidecar_bytes(self, name: str) -> bytes:
        return self._read(names.sidecar(name))

    def read_manifest(self, name: str) -> Manifest:
        """The set's manifest, checked against the schema (ManifestError) and naming this file (ManifestError)."""
        from dbkeeper.repo.manifest import ManifestError

        doc = Manifest.from_json(self.manifest_bytes(name))
        if doc.file != names.basename(name):
            raise ManifestError(f"the manifest describes {doc.file}")
        return doc

    def signature_bytes(self, name: str) -> bytes | None:
        """The set's ``.json.sig`` signature, None for an unsigned set."""
        try:
            with self.store.open(names.signature(name)) as f:
                return f.read(catalog.MAX_SIGNATURE + 1)
        except NotFound:
            return None

    def read_signed_manifest(self, name: str) -> tuple[Manifest, str | None]:
        """The set's manifest (as ``read_manifest``) and, with a verify key, what is wrong with its signature over
        those very bytes ("unsigned", "bad signature"; None when it verifies, or without a verify key)."""
        from dbkeeper.repo.manifest import ManifestError

        raw = self.manifest_bytes(name)
        doc = Manifest.from_json(raw)
        if doc.file != names.basename(name):
            raise ManifestError(f"the manifest describes {doc.file}")
        if self.verify_key is None:
            return doc, None
        return doc, catalog.signature_problem(self.verify_key, raw, self.signature_bytes(name))

    def read_sidecar(self, name: str) -> str:
        """The digest in the set's ``.sha256`` sidecar; ValueError if it is malformed, NotFound if absent."""
        return names.parse_sha256_line(self.sidecar_bytes(name), name)

    def open(self, name: str) -> BinaryIO:
        """The set's stored bytes (compressed, maybe encrypted)."""
        return self.store.open(name)

    def exists(self, name: str) -> bool:
        try:
            self.store.open(name).close()
        except NotFound:
            return False
        return True

    def _read(self, name: str) -> bytes:
        with self.store.open(name) as f:
            return f.read(MAX_BYTES + 1)  # one byte more than a manifest may hold: too large is seen

    # -- writing -------------------------------------------------------------------------------------------
    def new_name(self, source_id: str, database: str, started: datetime, extension: str) -> names.SetName:
        """A name for a new set that nothing in the store uses yet: the start second, then ``-2``, ``-3`` …"""
        taken = {o.name for o in self.store.list(f"{source_id}/")}
        for seq in range(1, MAX_SEQ + 1):
            candidate = names.new_name(source_id, database, started, extension, seq)
            if not any(n in taken for n in names.all_files(candidate.name)):
                return candidate
        raise DbkeeperError(
            f"{MAX_SEQ} backups of {source_id} started in the same second already exist in {self.url}",
            "check the machine's clock and what runs the backups",
        )

    def commit(
        self,
        name: str,
        data: Iterable[bytes],
        build: Callable[[int], Manifest],
        *,
        size_hint: int | None = None,
        signer: Signer | None = None,
    ) -> Manifest:
        """Write a new set: the data, then ``build(size)``'s manifest with its sidecar (and, with ``signer``, its
        signature). AlreadyExists if any of the names is taken (nothing of what is there is touched)."""
        size = self.store.put(name, data, if_absent=True, size_hint=size_hint)
        try:
            doc = build(size)
            raw = doc.to_json()
            self.store.put(names.sidecar(name), [names.sha256_line(doc.sha256, name)], if_absent=True)
            if signer is not None:
                self.store.put(names.signature(name), [signer.sign(raw)], if_absent=True)
            self.store.put(names.manifest(name), [raw], if_absent=True)
        except AlreadyExists:
            # Another writer holds the name too: on an endpoint whose "if absent" is a check before the write,
            # the data under it may be theirs by now. Remove nothing; what stays is at worst an incomplete set.
            raise
        except BaseException:
            self._forget(name)
            raise
        return doc

    def put_copy(
        self,
        name: str,
        data: Iterable[bytes],
        sidecar: bytes,
        manifest: bytes,
        *,
        replace: bool,
        signature: bytes | None = None,
    ) -> None:
        """Write a set exactly as another store holds it (``copy``): the data (over an incomplete one of the same
        name only when ``replace``), then the sidecar, the signature if the set has one, and the manifest, byte for
        byte. A failure removes what this call wrote."""
        self.store.put(name, data, if_absent=not replace)
        try:
            self.store.put(names.sidecar(name), [sidecar], if_absent=not replace)
            if signature is not None:
                self.store.put(names.signature(name), [signature], if_absent=not replace)
            self.store.put(names.manifest(name), [manifest], if_absent=True)
        except AlreadyExists:
            raise  # another writer's set, maybe over ours by now (see ``commit``): remove nothing
        except BaseException:
            if not replace:
                self._forget(name)
            raise

    def add_signature(self, name: str, signature: bytes) -> bool:
        """Give a committed set that has none the signature another store holds for it (``copy`` to a store that
        already has the set unsigned); True if written. Never replaces one (if absent)."""
        if self.signature_bytes(name) is not None:
            return False
        try:
            self.store.put(names.signature(name), [signature], if_absent=True)
        except AlreadyExists:
            return False
        return True

    def delete(self, name: str) -> None:
        """Remove a set: manifest first, then the signature, the sidecar, then the data (``names.all_files``)."""
        for part in names.all_files(name):
            self.store.delete(part)

    def _forget(self, name: str) -> None:
        """Remove what a failed commit wrote (best effort: what stays has no manifest and counts for nothing)."""
        for part in (names.signature(name), names.sidecar(name), name):
            with contextlib.suppress(DbkeeperError):
                self.store.delete(part)

    # -- drill records -------------------------------------------------------------------------------------
    def drill_records(self, source: str | None = None) -> drills.Found:
        """The drill records in the store (of ``source``), oldest first; unreadable ones are skipped, and with a
        verify key unsigned or badly signed ones (counted in ``refused``)."""
        return drills.read(self.store, source, self.verify_key)

    # -- leftovers -----------------------------------------------------------------------------------------
    def leftovers(self, now: datetime, older_than: timedelta | None = None) -> list[LeftoverState]:
        """What interrupted writes left; stale once older than ``older_than`` (default: an hour for a temporary
        file, whose running writer would hold its lock anyway; a day for an upload, which nothing can tell apart
        from one still running on another host) and owned by no running write."""
        return [
            LeftoverState(
                lo,
                max(now - lo.started, timedelta(0)),
                LEFTOVER_AGE.get(lo.kind, timedelta(hours=24)) if older_than is None else older_than,
            )
            for lo in self.store.leftovers()
        ]

    def remove_leftover(self, state: LeftoverState) -> None:
        self.store.remove_leftover(state.leftover)


__all__ = ["Catalog", "DrillRecord", "Entry", "LeftoverState", "Manifest", "Repository", "catalog", "locate", "names"]


def locate(
    spec: str,
    repo: Callable[[str | None], Repository],
    now: datetime,
    *,
    source: str | None = None,
    database: str | None = None,
) -> tuple[Repository, str]:
    """Where a BACKUP argument points: ``latest`` (of ``source``/``database``), a set's name in the store
    (``casino-eu/casino_20261127_020000.sql.gz``, or only its file name when one set has it), a local path, or
    ``s3://…/file``. ``repo(url)`` opens a repository (None: the configured store). NoSuchBackup (exit 2) when
    nothing of the named set is there: a typo is not damage."""
    found, name = _locate(spec, repo, now, source=source, database=database)
    if spec != "latest":
        found.require_set(name)
    return found, name


def _locate(
    spec: str,
    repo: Callable[[str | None], Repository],
    now: datetime,
    *,
    source: str | None = None,
    database: str | None = None,
) -> tuple[Repository, str]:
    """``locate`` without the check that the set is there."""
    import os
    from pathlib import Path

    if spec == "latest":
        here = repo(None)
        return here, here.latest(now, source=source, database=database).name
    if spec.startswith("s3://"):
        prefix, _, name = spec.rpartition("/")
        if not prefix.startswith("s3://") or not name:
            from dbkeeper.errors import UsageError

            raise UsageError(f"{spec} names no backup", "give s3://BUCKET/PREFIX/SOURCE/FILE, as `dbkeeper list` shows")
        # As for a path: a set in its source's directory is named with it, so it is read (and copied) as that
        # source's, not as a top-level set of the source directory.
        store_url, _, source_dir = prefix.rpartition("/")
        if store_url.startswith("s3://") and len(store_url) > len("s3://") and names.SOURCE_ID_RE.match(source_dir):
            parent = repo(store_url)
            try:
                source_id = parent.read_manifest(f"{source_dir}/{name}").source_id
            except (DbkeeperError, ValueError):
                source_id = None
            if source_id == source_dir:
                return parent, f"{source_dir}/{name}"
        return repo(prefix), name
    path = Path(spec)
    try:
        is_file = path.is_file()
    except OSError:  # a name longer than the file system takes: no file of ours, so a name in the store
        is_file = False
    if is_file:
        # A set in its source's directory is named with it (copies then keep the layout); anything else is a set
        # of the directory it is in.
        try:
            with open(names.manifest(str(path)), "rb") as f:
                source_id = Manifest.from_json(f.read(MAX_BYTES + 1)).source_id
        except (OSError, ValueError):
            source_id = None
        if source_id and source_id == path.parent.name:
            return repo(str(path.parent.parent)), f"{source_id}/{path.name}"
        return repo(str(path.parent)), path.name
    here = repo(None)
    parsed = names.parse(spec)
    if parsed is not None and not parsed.legacy:
        return here, spec
    if parsed is not None:
        matches = [e.name for e in here.scan(now).entries if names.basename(e.name) == spec]
        if len(matches) == 1:
            return here, matches[0]
        if len(matches) > 1:
            from dbkeeper.errors import UsageError

            raise UsageError(f"several sources hold a backup named {spec}", f"name one: {', '.join(matches)}")
        return here, spec
    if os.sep in spec or "/" in spec:
        raise NoSuchBackup(
            f"{spec} does not exist", "give a path to a backup file, a name from `dbkeeper list`, or latest"
        )
    return here, spec
