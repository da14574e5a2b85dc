"""Base backups in the store: the one place that names, writes, reads and lists them.

Layout, beside the WAL archive of the same cluster (see archive.py)::

    pitr/<source id>/<sysid>-<major>/base/<YYYYMMDDTHHMMSSZ>-F|I/
        base.tar.zst[.age]        the data directory as pg_basebackup's tar (backup_manifest taken out)
        backup_manifest.zst[.age] PostgreSQL's manifest: every file's SHA-256, the WAL range
        backup.json.sig           with a signing key: Ed25519 over backup.json's exact bytes
        backup.json               written last: its presence is the commit marker

``-F`` is a full backup, ``-I`` an incremental one (PostgreSQL 17, ``pg_basebackup --incremental``) whose
``parent`` is the newest full backup of the same archive when it was taken. A base backup is complete only when
every WAL segment from its start to its stop segment is in the archive (rule 5 of PITR.md); until then, and
whenever anything fails, there is no ``backup.json`` and what was written is removed (best effort: what stays is
listed as incomplete, and an interrupted upload is a leftover for ``cleanup``).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dbkeeper import __version__, codec, crypto
from dbkeeper.errors import CheckFailed, DbkeeperError, NotFound, UsageError
from dbkeeper.pitr import walfile
from dbkeeper.pitr.archive import WalArchive, sources
from dbkeeper.signing import Signer, VerifyKey
from dbkeeper.storage import Store
from dbkeeper.streams import Tap

FORMAT = 1
JSON_NAME = "backup.json"
SIG_NAME = "backup.json.sig"
MAX_JSON = 1 << 20
_ID = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)-(?P<kind>[FI])\Z")
KINDS = {"F": "full", "I": "incremental"}


def backup_id(started: datetime, kind: str) -> str:
    return started.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") + ("-I" if kind == "incremental" else "-F")


def base_prefix(archive: WalArchive, aid: str) -> str:
    return f"{archive.base(aid)}/base/"


@dataclass(frozen=True)
class StoredObject:
    name: str  # within the backup's directory: base.tar.zst, backup_manifest.zst (+ .age)
    size: int  # stored bytes
    sha256: str  # of the stored bytes
    raw_size: int  # before compression

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256, "raw_size": self.raw_size}


@dataclass(frozen=True)
class BaseBackup:
    """``backup.json``, parsed and checked once (a forged or damaged one is a broken entry, never a traceback)."""

    id: str
    kind: str  # full | incremental
    parent: str | None
    label: str
    source_id: str
    archive_id: str
    pg_version: str
    pg_major: int
    system_identifier: int
    wal_segment_size: int
    timeline: int
    start_lsn: int
    stop_lsn: int
    start_time: datetime  # the server's clock before the backup started
    stop_time: datetime  # the server's clock after it ended: a target at or after this is consistent
    created_at: datetime
    duration_s: float
    wal_ranges: tuple[tuple[int, int, int], ...]  # (timeline, start LSN, end LSN) as the manifest says
    objects: tuple[StoredObject, ...]
    manifest_checksum: str
    compression: str
    recipients: tuple[str, ...]
    wal_verified: bool

    @property
    def start_segno(self) -> int:
        return walfile.lsn_segno(self.start_lsn, self.wal_segment_size)

    @property
    def stop_segno(self) -> int:
        """The segment holding the backup's last WAL record (the one before ``stop_lsn`` when it ends one)."""
        return walfile.lsn_segno(max(self.stop_lsn - 1, self.start_lsn), self.wal_segment_size)

    @property
    def start_segment(self) -> str:
        """The name of the first WAL segment the backup needs."""
        return walfile.segment_name(self.timeline, self.start_segno, self.wal_segment_size)

    @property
    def stop_segment(self) -> str:
        """The name of the segment holding its last WAL record, on the timeline the backup ended on."""
        return walfile.segment_name(self.wal_ranges[-1][0], self.stop_segno, self.wal_segment_size)

    def segment_ranges(self) -> list[tuple[int, int, int]]:
        """(timeline, first segno, last segno) of WAL the backup needs to become consistent."""
        seg = self.wal_segment_size
        return [
            (tli, walfile.lsn_segno(start, seg), walfile.lsn_segno(max(end - 1, start), seg))
            for tli, start, end in self.wal_ranges
        ]

    def object(self, stem: str) -> StoredObject:
        for o in self.objects:
            if o.name.removesuffix(".age").removesuffix(".zst") == stem:
                return o
        raise CheckFailed(f"base backup {self.id} lists no {stem} object")

    def to_json(self) -> dict[str, Any]:
        seg = self.wal_segment_size
        return {
            "format": FORMAT,
            "tool": f"dbkeeper {__version__}",
            "id": self.id,
            "kind": self.kind,
            "parent": self.parent,
            "label": self.label,
            "source_id": self.source_id,
            "archive_id": self.archive_id,
            "pg_version": self.pg_version,
            "pg_major": self.pg_major,
            "system_identifier": str(self.system_identifier),
            "wal_segment_size": seg,
            "timeline": self.timeline,
            "start_lsn": walfile.format_lsn(self.start_lsn),
            "stop_lsn": walfile.format_lsn(self.stop_lsn),
            "start_segment": self.start_segment,
            "stop_segment": self.stop_segment,
            "start_time": _iso(self.start_time),
            "stop_time": _iso(self.stop_time),
            "created_at": _iso(self.created_at),
            "duration_s": self.duration_s,
            "wal_ranges": [
                {"timeline": t, "start_lsn": walfile.format_lsn(a), "end_lsn": walfile.format_lsn(b)}
                for t, a, b in self.wal_ranges
            ],
            "objects": [o.to_json() for o in self.objects],
            "backup_manifest_checksum": self.manifest_checksum,
            "compression": self.compression,
            "encryption": {"format": "age", "recipients": list(self.recipients)} if self.recipients else None,
            "wal_verified": self.wal_verified,
        }

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2) + "\n").encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> BaseBackup:
        try:
            doc = json.loads(raw)
            if doc["format"] != FORMAT:
                raise ValueError(f"format {doc['format']!r} is not {FORMAT}")
            enc = doc.get("encryption")
            out = cls(
                id=str(doc["id"]),
                kind=str(doc["kind"]),
                parent=None if doc["parent"] is None else str(doc["parent"]),
                label=str(doc["label"]),
                source_id=str(doc["source_id"]),
                archive_id=str(doc["archive_id"]),
                pg_version=str(doc["pg_version"]),
                pg_major=int(doc["pg_major"]),
                system_identifier=int(doc["system_identifier"]),
                wal_segment_size=int(doc["wal_segment_size"]),
                timeline=int(doc["timeline"]),
                start_lsn=walfile.parse_lsn(doc["start_lsn"]),
                stop_lsn=walfile.parse_lsn(doc["stop_lsn"]),
                start_time=_parse_iso(doc["start_time"]),
                stop_time=_parse_iso(doc["stop_time"]),
                created_at=_parse_iso(doc["created_at"]),
                duration_s=float(doc["duration_s"]),
                wal_ranges=tuple(
                    (int(r["timeline"]), walfile.parse_lsn(r["start_lsn"]), walfile.parse_lsn(r["end_lsn"]))
                    for r in doc["wal_ranges"]
                ),
                objects=tuple(
                    StoredObject(str(o["name"]), int(o["size"]), str(o["sha256"]), int(o["raw_size"]))
                    for o in doc["objects"]
                ),
                manifest_checksum=str(doc["backup_manifest_checksum"]),
                compression=str(doc["compression"]),
                recipients=tuple(str(r) for r in enc["recipients"]) if enc else (),
                wal_verified=bool(doc["wal_verified"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckFailed(f"backup.json does not read as dbkeeper writes it ({exc})") from None
        m = _ID.match(out.id)
        if not m or KINDS[m["kind"]] != out.kind or (out.kind == "incremental") != (out.parent is not None):
            raise CheckFailed(f"backup.json names an impossible backup ({out.id}, {out.kind}, parent {out.parent})")
        if not walfile.valid_seg_size(out.wal_segment_size) or not out.wal_ranges or out.stop_lsn < out.start_lsn:
            raise CheckFailed("backup.json holds an impossible WAL range or segment size")
        for o in out.objects:
            if "/" in o.name or o.name.startswith(".") or not re.fullmatch(r"[0-9a-f]{64}", o.sha256):
                raise CheckFailed(f"backup.json lists an impossible object {o.name[:60]!r}")
        return out


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.astimezone(UTC)


@dataclass
class Listed:
    """A base backup as a listing finds it: ``backup`` when its backup.json reads (and, with a verify key, is
    signed by it); ``status`` ok, incomplete (no backup.json) or broken (with ``problem``)."""

    archive_id: str
    id: str
    prefix: str
    status: str
    backup: BaseBackup | None = None
    problem: str | None = None
    objects: dict[str, int] = field(default_factory=dict)  # object name -> stored size

    @property
    def good(self) -> bool:
        return self.status == "ok"


def list_backups(archive: WalArchive, aid: str | None = None, verify_key: VerifyKey | None = None) -> list[Listed]:
    """Every base backup of the source (or of one archive), oldest first; never fails on a damaged one."""
    found: dict[tuple[str, str], dict[str, int]] = {}
    # Each archive's base/ only: listing the source's whole tree would read every archived WAL file's name.
    for each in [aid] if aid else [a.archive_id for a in archive.ids()]:
        for info in archive.store.list(f"{archive.base(each)}/base/"):
            parts = info.name.split("/")
            if len(parts) == 6 and parts[3] == "base" and _ID.match(parts[4]):
                found.setdefault((parts[2], parts[4]), {})[parts[5]] = info.size
    out = []
    for (found_aid, bid), objects in sorted(found.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        prefix = f"{archive.base(found_aid)}/base/{bid}/"
        entry = Listed(found_aid, bid, prefix, "incomplete", objects=objects)
        if JSON_NAME in objects:
            _read_entry(archive.store, entry, verify_key)
        out.append(entry)
    return out


def list_all(store: Store, verify_key: VerifyKey | None = None, source: str | None = None) -> list[Listed]:
    """Every base backup in the store (or of ``source``), by source then age: what ``dbkeeper list`` shows."""
    out = []
    for sid in [source] if source else sources(store):
        out += list_backups(WalArchive(store, sid), None, verify_key)
    return out


def _read_entry(store: Store, entry: Listed, verify_key: VerifyKey | None) -> None:
    try:
        raw = _read(store, entry.prefix + JSON_NAME, MAX_JSON)
        doc = BaseBackup.from_bytes(raw)
        if doc.id != entry.id or doc.archive_id != entry.archive_id:
            raise CheckFailed(f"backup.json describes {doc.archive_id}/{doc.id}")
        for o in doc.objects:
            if entry.objects.get(o.name) != o.size:
                raise CheckFailed(f"{o.name} is missing or not {o.size} bytes")
        if verify_key is not None:
            try:
                sig = _read(store, entry.prefix + SIG_NAME, 4096)
            except NotFound:
                raise CheckFailed("unsigned") from None
            if not verify_key.verifies(raw, sig):
                raise CheckFailed("bad signature")
    except DbkeeperError as exc:
        entry.status, entry.problem = "broken", exc.message
        return
    entry.status, entry.backup = "ok", doc


def _read(store: Store, name: str, limit: int) -> bytes:
    with store.open(name) as f:
        data: bytes = f.read(limit + 1)
    if len(data) > limit:
        raise CheckFailed(f"{name} is larger than any dbkeeper writes")
    return data


def open_object(
    archive: WalArchive, listed: Listed, obj: StoredObject, identities: list[Any] | None
) -> Iterator[bytes]:
    """The object's raw bytes (decrypted, decompressed), checked against backup.json's size and SHA-256 at the
    end of the stream: a damaged object raises CheckFailed before the consumer sees its end."""
    assert listed.backup is not None
    name = listed.prefix + obj.name
    where = archive.store.describe(name)
    stored = Tap()

    def chunks() -> Iterator[bytes]:
        with archive.store.open(name) as f:
            yield from stored.tap(codec.read_chunks(f))
        if stored.size != obj.size or stored.hexdigest() != obj.sha256:
            raise CheckFailed(f"{where} is damaged: its bytes do not hash to what backup.json says")

    stream: Iterable[bytes] = chunks()
    if obj.name.endswith(".age"):
        if not identities:
            raise UsageError(f"{where} is encrypted", crypto.IDENTITY_HINT)
        stream = crypto.decrypt(stream, identities)
    return codec.decompress(listed.backup.compression, stream)


def read_manifest(archive: WalArchive, listed: Listed, identities: list[Any] | None) -> bytes:
    assert listed.backup is not None
    return b"".join(open_object(archive, listed, listed.backup.object("backup_manifest"), identities))


# -- writing ---------------------------------------------------------------------------------------------------


@dataclass
class Writer:
    """Writes one base backup's objects, then (``commit``) its backup.json; ``abandon`` removes what it wrote."""

    archive: WalArchive
    aid: str
    id: str
    recipients: list[Any]
    written: list[str] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"{self.archive.base(self.aid)}/base/{self.id}/"

    def put(self, stem: str, raw: Iterable[bytes], compression: str) -> StoredObject:
        name = stem + ".zst" + (".age" if self.recipients else "")
        raw_tap, stored = Tap(digest=False), Tap()
        stream = codec.compress(compression, raw_tap.tap(raw))
        if self.recipients:
            stream = crypto.encrypt(stream, self.recipients)
        self.written.append(self.prefix + name)
        self.archive.store.put(self.prefix + name, stored.tap(stream), if_absent=True)
        return StoredObject(name, stored.size, stored.hexdigest(), raw_tap.size)

    def commit(self, doc: BaseBackup, signer: Signer | None) -> None:
        raw = doc.to_bytes()
        if signer is not None:
            self.written.append(self.prefix + SIG_NAME)
            self.archive.store.put(self.prefix + SIG_NAME, [signer.sign(raw)], if_absent=True)
        self.archive.store.put(self.prefix + JSON_NAME, [raw], if_absent=True)

    def abandon(self) -> None:
        for name in reversed(self.written):
            with contextlib.suppress(DbkeeperError):
                self.archive.store.delete(name)


def new_writer(archive: WalArchive, aid: str, started: datetime, kind: str, recipients: list[Any]) -> Writer:
    """A writer under a backup id nothing uses yet (a second backup started in the same second waits for the
    next one: ids are seconds)."""
    taken = {e.id for e in list_backups(archive, aid)}
    moment = started
    while backup_id(moment, kind) in taken:
        moment += timedelta(seconds=1)
    return Writer(archive, aid, backup_id(moment, kind), recipients)


def wait_for_wal(
    archive: WalArchive,
    aid: str,
    ranges: list[tuple[int, int, int]],
    seg_size: int,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Wait until every segment of ``ranges`` is archived; CheckFailed naming the first missing one otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        missing = [m for tli, a, b in ranges for m in archive.missing(aid, tli, a, b, seg_size)]
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise CheckFailed(
                f"the base backup's WAL segment {missing[0]} is not in the archive after {timeout:g} s"
                + (f" ({len(missing)} missing)" if len(missing) > 1 else ""),
                "check archive_command (dbkeeper wal-push) and the server log; the backup was not kept",
            )
        sleep(1.0)


def check_incremental_parent(listed: list[Listed], aid: str) -> Listed:
    fulls = [e for e in listed if e.good and e.archive_id == aid and e.backup and e.backup.kind == "full"]
    if not fulls:
        raise UsageError(
            "an incremental base backup needs a full one of this cluster in the store first",
            "run `dbkeeper basebackup` without --incremental",
        )
    return fulls[-1]
