"""What a store holds, derived from listing it every time (no index to drift), tolerant of anything in it.

Like barman-cloud's ``unreadable_backups``, a damaged entry is reported, never fatal. Each data object becomes an
``Entry`` with a status:

- ``ok``: the manifest reads (repo.manifest's schema), describes this file and its source, its size matches the
  object, and the ``.sha256`` sidecar is there;
- ``incomplete``: no manifest (the write never finished, or a prune stopped half way);
- ``broken``: anything else, with the reason (an unreadable or foreign manifest, a size that differs, a missing
  sidecar or data file);
- ``broken`` too, when a verify key is given: "unsigned" (no ``.json.sig``) or "bad signature" (it does not
  verify over the manifest's exact bytes with that key);
- ``future``: a good-looking set whose ``created_at`` lies more than ``FUTURE_SLACK`` after the time of the scan
  (a backup host with a skewed clock, or a forged manifest). It is not ``latest``, not counted by retention, and
  never removed by it; ``status`` warns about it.

A scan reads manifests and listings only, never a set's data: ``ok`` means what that can show (the manifest,
the size, the sidecar's presence and, with a verify key, the signature; ``Entry.checked`` names them), not that
the bytes are intact. Such a set's ``state`` is therefore ``unverified`` (people see "size ok"): a flipped byte
is found by ``verify``, which reads a set whole, or a drill, which restores it.

Entries belong to a series: one database of one source (``source_id``, and the database as written in the file
name, so that a server's roles kept with ``--globals`` are a series of their own beside the database's). Sets in
the legacy top-level layout belong to the source whose id is their database name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from dbkeeper.errors import DbkeeperError, NoSuchBackup, NotFound, UsageError
from dbkeeper.repo import names
from dbkeeper.repo.manifest import MAX_BYTES, Manifest, ManifestError
from dbkeeper.storage import ObjectInfo, Store

if TYPE_CHECKING:
    from dbkeeper.signing import VerifyKey

OK, INCOMPLETE, BROKEN, FUTURE = "ok", "incomplete", "broken", "future"
UNVERIFIED = "unverified"  # the state of an ok set: what a scan can see is fine, its bytes were not read
FUTURE_SLACK = timedelta(minutes=5)
GLOBALS_SUFFIX = ".globals"
MAX_SIGNATURE = 4096  # an Ed25519 signature is 64 bytes; anything far larger is read no further
UNSIGNED, BAD_SIGNATURE = "unsigned", "bad signature"


@dataclass
class Entry:
    name: str  # the data object's name in the store
    source_id: str
    label: str  # the database as written in the file name
    created: datetime  # the manifest's created_at when it reads, else the time in the name
    stored: datetime  # when the store received the set's last object (its own clock, not the backup host's)
    size: int
    status: str
    problem: str | None = None
    manifest: Manifest | None = None
    legacy: bool = False
    seq: int = 1  # the set's number within its start second (-2, -3 …)
    signed: bool = False  # a .json.sig is there (checked only with a verify key)
    checked: tuple[str, ...] = ()  # what the scan found right: manifest, size, sidecar, signature

    @property
    def state(self) -> str:
        """``unverified`` for an ok set (see the module doc), else its status."""
        return UNVERIFIED if self.status == OK else self.status

    @property
    def state_text(self) -> str:
        """The state as ``list`` shows it: ``size ok`` (``size ok, signed``), else ``BROKEN: why`` …"""
        if self.status == OK:
            return "size ok, signed" if "signature" in self.checked else "size ok"
        return f"{self.status.upper()}: {self.problem}"

    @property
    def order(self) -> tuple[datetime, int, str]:
        """Oldest first: by time, then by number within the second (``-2`` sorts before ``.`` as text)."""
        return (self.created, self.seq, self.name)

    @property
    def good(self) -> bool:
        return self.status == OK

    @property
    def database(self) -> str:
        """The database's real name (from the manifest when it reads), for people and for ``--database``."""
        return self.manifest.database if self.manifest is not None else self.label

    @property
    def series(self) -> tuple[str, str]:
        return (self.source_id, self.label)

    @property
    def series_name(self) -> str:
        """The series as people, status and the drill log name it: the source id (a source is one database),
        ``<id>.globals`` for its server's roles; a legacy set's is its database, as it always was."""
        if self.legacy:
            return self.label
        return self.source_id + (GLOBALS_SUFFIX if self.label.endswith(GLOBALS_SUFFIX) else "")

    @property
    def is_globals(self) -> bool:
        return self.manifest is not None and self.manifest.dump_format == "globals"

    @property
    def fresh_at(self) -> datetime:
        """How recent the set is for judging freshness: the earlier of its own claim and the store's clock, so a
        manifest dated later than it was stored cannot make an old backup look new."""
        return min(self.created, self.stored)


@dataclass
class Catalog:
    store: str
    entries: list[Entry] = field(default_factory=list)  # oldest first

    def series(self) -> dict[tuple[str, str], list[Entry]]:
        out: dict[tuple[str, str], list[Entry]] = {}
        for e in self.entries:
            out.setdefault(e.series, []).append(e)
        return dict(sorted(out.items()))

    def select(self, *, source: str | None = None, database: str | None = None) -> list[Entry]:
        return [
            e
            for e in self.entries
            if (source is None or e.source_id == source) and (database is None or database in (e.database, e.label))
        ]


def scan(
    store: Store,
    now: datetime,
    *,
    source: str | None = None,
    database: str | None = None,
    verify_key: VerifyKey | None = None,
) -> Catalog:
    """Every backup set in the store (or of one source, or one database), oldest first; with ``verify_key``, a
    set without a good signature by it is broken."""
    skip = (f"{names.PITR_ROOT}/",)
    listed = store.list(f"{source}/" if source else "", skip=() if source else skip)
    if source:
        listed += [o for o in store.list(skip=skip) if "/" not in o.name]  # the legacy layout's sets of that source
    objects = {o.name: o for o in listed}
    catalog = Catalog(store.url)
    for name in objects:
        data = name
        for suffix in names.SIDECARS:
            if name.endswith(suffix):
                data = name[: -len(suffix)]
        parsed = names.parse(data)
        if parsed is None or (data != name and data in objects):
            continue  # not a backup set's object, or a sidecar whose data file is listed (it is seen there)
        if name.endswith(names.SHA256_SUFFIX) and names.manifest(data) in objects:
            continue  # an orphan's sidecar beside its manifest: the manifest reports it once
        if name.endswith(names.SIGNATURE_SUFFIX) and (
            names.manifest(data) in objects or names.sidecar(data) in objects
        ):
            continue  # an orphan's signature beside its manifest or sidecar: reported there
        entry = _entry(store, parsed, objects, now, verify_key)
        if entry is not None:
            catalog.entries.append(entry)
    catalog.entries = [e for e in catalog.entries if database is None or database in (e.database, e.label)]
    if source:
        catalog.entries = [e for e in catalog.entries if e.source_id == source]
    catalog.entries.sort(key=lambda e: e.order)
    return catalog


def _entry(
    store: Store,
    parsed: names.SetName,
    objects: dict[str, ObjectInfo],
    now: datetime,
    verify_key: VerifyKey | None = None,
) -> Entry | None:
    name = parsed.name
    data = objects.get(name)
    present = [objects[n] for n in names.all_files(name) if n in objects]
    entry = Entry(
        name=name,
        source_id=parsed.source_id or parsed.label,
        label=parsed.label,
        created=parsed.started,
        stored=max(o.modified for o in present),
        size=data.size if data else 0,
        status=OK,
        legacy=parsed.legacy,
        seq=parsed.seq,
        signed=names.signature(name) in objects,
    )
    if names.manifest(name) not in objects:
        if data is None and names.sidecar(name) not in objects:
            entry.status, entry.problem = INCOMPLETE, "only a .json.sig signature is left"
        elif data is None:
            entry.status, entry.problem = INCOMPLETE, "only a .sha256 sidecar is left"
        else:
            entry.status, entry.problem = INCOMPLETE, "no manifest: the backup never completed"
        return entry
    try:
        raw = _read(store, names.manifest(name), MAX_BYTES)
        doc = Manifest.from_json(raw)
    except (ManifestError, DbkeeperError) as exc:
        entry.status, entry.problem = BROKEN, f"unreadable manifest: {exc}"
        return entry
    entry.manifest = doc
    entry.created = doc.created
    problem = _mismatch(entry, doc, parsed, objects)
    if problem is None and verify_key is not None:
        signature = None
        if entry.signed:
            try:
                signature = _read(store, names.signature(name), MAX_SIGNATURE)
            except NotFound:
                pass
            except DbkeeperError as exc:
                entry.status, entry.problem = BROKEN, f"unreadable signature: {exc}"
                return entry
        problem = signature_problem(verify_key, raw, signature)
        if problem is None:
            entry.checked = ("manifest", "size", "sidecar", "signature")
    elif problem is None:
        entry.checked = ("manifest", "size", "sidecar")
    if problem:
        entry.status, entry.problem = BROKEN, problem
    elif doc.created > now + FUTURE_SLACK:
        entry.status = FUTURE
        entry.problem = (
            f"dated {doc.created_at}, {_ago(doc.created - now)} in the future: the backup host's clock is wrong,"
            " or the manifest is not genuine"
        )
    return entry


def _mismatch(entry: Entry, doc: Manifest, parsed: names.SetName, objects: dict[str, ObjectInfo]) -> str | None:
    name = entry.name
    if doc.file != names.basename(name):
        return f"the manifest describes {doc.file}"
    if not parsed.legacy and doc.source_id != parsed.source_id:
        return f"the manifest belongs to source {doc.source_id}, but is stored under {parsed.source_id}"
    if parsed.legacy and doc.source_id not in (None, parsed.label):
        # The top level is the legacy layout of source <database>: a manifest naming another source does not
        # belong there, and would be counted and restored as that database's history.
        return f"the manifest belongs to source {doc.source_id}, but is stored at the top of the store"
    if names.file_label(doc.database) != parsed.label:
        return f"the manifest describes database {doc.database!r}"
    if name not in objects:
        return "the data file is missing"
    if doc.size_bytes != entry.size:
        return f"size is {entry.size} bytes, the manifest says {doc.size_bytes}"
    if names.sidecar(name) not in objects:
        return "the .sha256 sidecar is missing"
    return None


def signature_problem(verify_key: VerifyKey, manifest: bytes, signature: bytes | None) -> str | None:
    """What is wrong with a set's signature over its manifest's exact bytes: "unsigned", "bad signature", or
    None when ``verify_key`` verifies it."""
    if signature is None:
        return UNSIGNED
    return None if verify_key.verifies(manifest, signature) else BAD_SIGNATURE


def _read(store: Store, name: str, limit: int) -> bytes:
    with store.open(name) as f:
        return f.read(limit + 1)  # one byte more than allowed: too large is seen


def _ago(delta: timedelta) -> str:
    from dbkeeper.units import format_duration

    return format_duration(delta)


def newest_good(entries: Iterable[Entry]) -> Entry | None:
    """The newest good entry (entries oldest first, as ``scan`` returns them)."""
    good = [e for e in entries if e.good]
    return good[-1] if good else None


def broken_since_good(entries: list[Entry]) -> list[Entry]:
    """One series' broken or incomplete entries newer than its newest good one (all of them if none is)."""
    newest = newest_good(entries)
    return [e for e in entries if e.status in (BROKEN, INCOMPLETE) and (newest is None or e.created > newest.created)]


def latest(catalog: Catalog, *, source: str | None = None, database: str | None = None) -> Entry:
    """The newest good set of one series: ``source`` and/or ``database`` must leave exactly one (a server's roles
    kept with ``--globals`` count only when ``database`` names them)."""
    good = [e for e in catalog.select(source=source, database=database) if e.good]
    if not (database and database.endswith(GLOBALS_SUFFIX)):
        good = [e for e in good if not e.is_globals]
    what = " of " + " ".join(
        part for part in (f"source {source}" if source else "", f"database {database}" if database else "") if part
    )
    if not good:
        raise NoSuchBackup(
            "no complete backup found" + (what if source or database else ""),
            "`dbkeeper list` shows what the store holds; run `dbkeeper backup` first, or check --store",
        )
    series = sorted({e.series for e in good})
    if len(series) > 1:
        sources = sorted({e.source_id for e in good})
        if len(sources) > 1:
            held = ", ".join(
                f"{s} ({', '.join(sorted({e.database for e in good if e.source_id == s}))})" for s in sources
            )
            raise UsageError(
                f"the store holds backups{what if database else ''} from several sources: {held}",
                "say which with --source ID" + ("" if database else " (and --database NAME)"),
            )
        raise UsageError(
            f"source {sources[0]} holds several databases ({', '.join(sorted({e.database for e in good}))})",
            "say which with --database NAME",
        )
    return good[-1]
