"""The WAL archive: every WAL file a cluster hands to ``archive_command``, kept in a store, served back to
``restore_command``.

Layout (under the store's root)::

    pitr/<source id>/archives/<system identifier>-<major>   an index of the archives, so finding them lists no WAL
    pitr/<source id>/<system identifier>-<major>/archive.json
    pitr/<source id>/<system identifier>-<major>/wal/<TLI><LOG>/<file>-<sha256 of the raw bytes>.zst[.age]
    pitr/<source id>/<system identifier>-<major>/wal/history/<TLI>.history-<sha256>.zst[.age]

- The archive id ``<sysid>-<major>`` keeps a re-initdb'd or upgraded cluster's WAL apart from the old one's:
  their segment names repeat, their contents do not.
- The SHA-256 of the file's own bytes is part of the object's name. A second push of the same file finds its
  object by listing the name's prefix and succeeds (PostgreSQL pushes again after a crash between our put and
  its own bookkeeping); different bytes under a name already archived are refused, never stored beside or over
  it. Without conditional writes a race could still store two: ``fetch`` refuses to choose between them.
- ``.sig`` beside an object: an Ed25519 signature (signing.py) over the source, archive id, file name, SHA-256
  and size, written before the object. With a verify key, ``fetch`` serves nothing unsigned.
- Objects are written ``if_absent`` and atomically by the store; ``push`` returns only after the store has
  acknowledged the object, so PostgreSQL may recycle the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dbkeeper import crypto
from dbkeeper.errors import AlreadyExists, CheckFailed, DbkeeperError, NotFound, UsageError
from dbkeeper.pitr import walfile
from dbkeeper.pitr.datadir import Cluster as Cluster  # re-exported: the archive's callers name clusters
from dbkeeper.pitr.datadir import archive_id as archive_id
from dbkeeper.pitr.datadir import cluster_of as cluster_of
from dbkeeper.pitr.walfile import WalName, WalRefused
from dbkeeper.repo.names import PITR_ROOT, SOURCE_ID_RE
from dbkeeper.signing import Signer, VerifyKey
from dbkeeper.storage import ObjectInfo, Store

ROOT = PITR_ROOT
FORMAT_VERSION = 1
_OBJECT = re.compile(
    r"^(?P<file>[0-9A-F]{8}(?:[0-9A-F]{16}(?:\.partial|\.[0-9A-F]{8}\.backup)?|\.history))"
    r"-(?P<sha>[0-9a-f]{64})\.zst(?P<age>\.age)?\Z"
)
_ARCHIVE_ID = re.compile(r"^(?P<sysid>[0-9]{1,20})-(?P<major>[0-9]{1,3})\Z")
MAX_FILE = walfile.MAX_SEG_SIZE


class WalMissing(NotFound):
    """The archive does not hold the file: the one answer restore_command gives with exit status 1."""


class WalConflict(CheckFailed):
    """Different bytes under a name already archived: refused, so a restore never replays the wrong history."""


@dataclass(frozen=True)
class ArchivedWal:
    name: WalName
    object: str  # the store object's full name
    sha256: str
    size: int  # stored (compressed, encrypted) bytes
    encrypted: bool
    stored: datetime | None = None  # when the store received it (the store's clock): how far the archive reaches


@dataclass(frozen=True)
class ArchiveInfo:
    archive_id: str
    sysid: int
    major: int
    seg_size: int
    created_at: str


@dataclass(frozen=True)
class PushResult:
    file: str
    object: str
    duplicate: bool  # the same bytes were already archived
    raw_bytes: int
    stored_bytes: int
    sha256: str = ""  # of the raw bytes: what an acknowledgement records


def signed_text(source_id: str, aid: str, file: str, sha256: str, size: int) -> bytes:
    return f"dbkeeper-wal 1\n{source_id}\n{aid}\n{file}\n{sha256}\n{size}\n".encode()


def sources(store: Store) -> list[str]:
    """The source ids that have a WAL archive in the store, from the archives' index entries
    (``pitr/<source>/archives/<id>``). It lists the whole ``pitr/`` tree, WAL included: for the commands that go on
    to read every archive anyway (prune, status, metrics, the dashboard), not for every listing."""
    found = set()
    for info in store.list(f"{ROOT}/"):
        parts = info.name.split("/")
        if len(parts) == 4 and parts[2] == "archives" and _ARCHIVE_ID.match(parts[3]) and SOURCE_ID_RE.match(parts[1]):
            found.add(parts[1])  # a directory no source id names is not an archive (anyone can write the store)
    return sorted(found)


class WalArchive:
    """One source's WAL archive in a store."""

    def __init__(
        self,
        store: Store,
        source_id: str,
        *,
        recipients: Iterable[Any] = (),
        identities: Iterable[Any] | None = None,
        signer: Signer | None = None,
        verify_key: VerifyKey | None = None,
        on_refusal: Callable[[WalConflict], None] | None = None,
    ) -> None:
        from dbkeeper.repo.sources import check_id

        self.store = store
        self.source_id = check_id(source_id, "source")
        self.recipients = list(recipients)
        self.identities = list(identities) if identities is not None else None
        self.signer = signer
        self.verify_key = verify_key
        # Told of a refused push the first time those bytes are refused under that name (the refusal note is
        # new), so that a retrying archive_command alerts once, not every minute: wal-push and wal-daemon
        # notify the config's "wal" job from here.
        self.on_refusal = on_refusal

    # -- names

    def base(self, aid: str) -> str:
        return f"{ROOT}/{self.source_id}/{aid}"

    def _dir(self, aid: str, name: WalName) -> str:
        return f"{self.base(aid)}/wal/{name.directory}/"

    def _objects(self, prefix: str) -> list[ArchivedWal]:
        out = []
        for info in self.store.list(prefix):
            entry = self._parse(info)
            if entry is not None:
                out.append(entry)
        return out

    @staticmethod
    def _parse(info: ObjectInfo) -> ArchivedWal | None:
        m = _OBJECT.match(info.name.rpartition("/")[2])
        if not m:
            return None  # a signature, or something that is not ours
        return ArchivedWal(WalName.parse(m["file"]), info.name, m["sha"], info.size, bool(m["age"]), info.modified)

    # -- archive.json

    def ids(self) -> list[ArchiveInfo]:
        """Every archive (one per cluster and major version) this source has, oldest first."""
        out = []
        for info in self.store.list(f"{ROOT}/{self.source_id}/archives/"):
            aid = info.name.rpartition("/")[2]
            if _ARCHIVE_ID.match(aid):
                found = self.info(aid)  # archive.json is the truth; the index entry only says where to look
                if found is not None:
                    out.append(found)
        return sorted(out, key=lambda a: a.created_at)

    def info(self, aid: str) -> ArchiveInfo | None:
        try:
            with self.store.open(f"{self.base(aid)}/archive.json") as f:
                raw = f.read(1 << 16)
        except NotFound:
            return None
        try:
            doc = json.loads(raw)
            m = _ARCHIVE_ID.match(aid)
            assert m is not None
            info = ArchiveInfo(
                aid,
                int(doc["system_identifier"]),
                int(doc["pg_major"]),
                int(doc["wal_segment_size"]),
                doc["created_at"],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckFailed(f"{self.store.describe(self.base(aid) + '/archive.json')} is damaged ({exc})") from None
        if str(info.sysid) != m["sysid"] or str(info.major) != m["major"] or not walfile.valid_seg_size(info.seg_size):
            raise CheckFailed(f"{self.store.describe(self.base(aid) + '/archive.json')} does not match its place")
        return info

    def _ensure_info(self, cluster: Cluster, seg_size: int) -> None:
        found = self.info(cluster.archive_id)
        if found is None:
            doc = {
                "format_version": FORMAT_VERSION,
                "source_id": self.source_id,
                "system_identifier": str(cluster.sysid),
                "pg_major": cluster.major,
                "wal_segment_size": seg_size,
                "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            # The index entry first: an archive.json without one would never be found.
            with contextlib.suppress(AlreadyExists):
                self.store.put(f"{ROOT}/{self.source_id}/archives/{cluster.archive_id}", [b""], if_absent=True)
            with contextlib.suppress(AlreadyExists):  # a concurrent first push wrote it
                self.store.put(
                    f"{self.base(cluster.archive_id)}/archive.json", [json.dumps(doc).encode()], if_absent=True
                )
            return
        if found.seg_size != seg_size:
            raise WalRefused(
                f"the archive holds {found.seg_size}-byte segments, this one is {seg_size} bytes",
                "a cluster re-initialised with another --wal-segsize has another system identifier: check the source",
            )

    # -- push

    def push(self, path: Path, cluster: Cluster | None) -> PushResult:
        """Check, hash, compress (and encrypt, sign) one WAL file and store it; return once the store has it."""
        name = WalName.parse(path.name)
        try:
            with path.open("rb") as f:
                data = f.read(MAX_FILE + 1)
        except OSError as exc:
            raise DbkeeperError(f"cannot read {path}: {exc.strerror}") from None
        if len(data) > MAX_FILE:
            raise WalRefused(f"{path}: larger than any WAL segment")
        if name.kind in ("segment", "partial"):
            header = walfile.check_segment(name, data, cluster.sysid if cluster else None)
            seg_size = header.seg_size
            if cluster is None:
                major = walfile.MAGIC_MAJOR.get(header.magic)
                if major is None:
                    raise WalRefused(
                        f"{path}: cannot tell the PostgreSQL version of page magic 0x{header.magic:04X}",
                        "run wal-push from the data directory (archive_command does) or pass --data-dir",
                    )
                cluster = Cluster(header.sysid, major)
        else:
            walfile.check_text(name, data)
            if cluster is None:
                raise WalRefused(
                    f"{path}: a {name.kind} file names no cluster",
                    "run wal-push from the data directory (archive_command does) or pass --data-dir",
                )
            seg_size = 0
        aid = cluster.archive_id
        sha = hashlib.sha256(data).hexdigest()
        prefix = self._dir(aid, name) + name.text + "-"
        existing = [o for o in self._objects(prefix) if o.name.text == name.text]
        if seg_size:
            self._ensure_info(cluster, seg_size)
        elif self.info(aid) is None and not existing:
            # A history or backup file comes after its cluster's first segment; without it, there is no archive.
            raise WalRefused(
                f"{name.text}: the archive {self.store.describe(self.base(aid))} has no segment of this cluster yet",
                "archive_command pushes segments first; check --source and the store",
            )
        obj = f"{prefix}{sha}.zst" + (".age" if self.recipients else "")
        same = [o for o in existing if o.sha256 == sha]
        if same:
            self._sign(same[0].object, aid, name, sha, len(data))
            return PushResult(name.text, same[0].object, True, len(data), same[0].size, sha)
        if existing:
            conflict = WalConflict(
                f"{name.text} is already archived with other contents ({existing[0].sha256[:16]}…, this one "
                f"{sha[:16]}…); refused",
                "two clusters may be archiving to one --source, or a restored copy of this one still archives: "
                "give each cluster its own source and check with `dbkeeper wal-verify`",
            )
            if self._record_refusal(aid, name, existing[0].sha256, sha) and self.on_refusal is not None:
                self.on_refusal(conflict)
            raise conflict
        self._sign(obj, aid, name, sha, len(data))
        stored = self._store(obj, data)
        return PushResult(name.text, obj, False, len(data), stored, sha)

    def _record_refusal(self, aid: str, name: WalName, kept: str, refused: str) -> bool:
        """Leave a note in the store that ``wal-verify`` and ``status`` report from any host: the refused bytes are
        never stored, the fact that someone pushed them is. Best effort: the refusal itself is what matters.
        True when the note is new (the first refusal of these bytes under this name): the refusal is told once."""
        import socket

        doc = {
            "file": name.text,
            "archived_sha256": kept,
            "refused_sha256": refused,
            "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "host": socket.gethostname(),
        }
        try:
            self.store.put(
                f"{self.base(aid)}/refused/{name.text}-{refused}.json", [json.dumps(doc).encode()], if_absent=True
            )
        except DbkeeperError:  # told before, or no note can be kept: then archive_command's own failures and the
            return False  # growing .ready backlog (status) say it; an alert at every retry would be noise
        return True

    def refusals(self, aid: str) -> list[dict[str, str]]:
        """The pushes refused for different bytes under an archived name (see ``_record_refusal``), oldest first."""
        out = []
        for info in self.store.list(f"{self.base(aid)}/refused/"):
            try:
                with self.store.open(info.name) as f:
                    doc = json.loads(f.read(1 << 16))
                if isinstance(doc, dict):
                    out.append(
                        {
                            k: str(v)
                            for k, v in doc.items()
                            if k in ("file", "archived_sha256", "refused_sha256", "at", "host")
                        }
                    )
            except (DbkeeperError, ValueError):
                out.append({"file": info.name.rpartition("/")[2], "at": info.modified.strftime("%Y-%m-%dT%H:%M:%SZ")})
        return sorted(out, key=lambda d: d.get("at", ""))

    def _store(self, obj: str, data: bytes) -> int:
        import zstandard

        chunks: Iterable[bytes] = [zstandard.ZstdCompressor(level=3).compress(data)]
        if self.recipients:
            chunks = crypto.encrypt(chunks, self.recipients)
        try:
            return self.store.put(obj, chunks, if_absent=True)
        except AlreadyExists:
            # A concurrent push of the same bytes (the name holds their hash) won the race: it is archived.
            with self.store.open(obj) as f:
                return len(f.read())

    def _sign(self, obj: str, aid: str, name: WalName, sha: str, size: int) -> None:
        if self.signer is None:
            return
        signature = self.signer.sign(signed_text(self.source_id, aid, name.text, sha, size))
        # Ed25519 is deterministic: an existing signature is the same key's same bytes, or fetch will call it bad.
        with contextlib.suppress(AlreadyExists):
            self.store.put(obj + ".sig", [signature], if_absent=True)

    # -- fetch

    def find(self, aid: str, file: str) -> ArchivedWal:
        """The one archived object holding ``file``; WalMissing when there is none."""
        if file == "00000001.history":
            # Timeline 1 has no history file, yet a promotion at the end of an archive recovery asks for it (to
            # copy its parent's history into the new one): "not archived" is the answer PostgreSQL expects.
            raise WalMissing(f"{file}: timeline 1 has no history file")
        name = WalName.parse(file)
        found = [o for o in self._objects(self._dir(aid, name) + name.text + "-") if o.name.text == name.text]
        if not found:
            raise WalMissing(f"{file} is not in the archive {self.store.describe(self.base(aid))}")
        if len({o.sha256 for o in found}) > 1:
            raise WalConflict(
                f"{file} is archived {len(found)} times with different contents; refusing to choose",
                "run `dbkeeper wal-verify` and remove the copy that is not this cluster's",
            )
        return found[0]

    def fetch(self, aid: str, file: str, dest: Path, cluster: Cluster | None = None) -> ArchivedWal:
        """Write ``file`` to ``dest`` (through a temporary file and a rename: never a partial file at ``dest``)."""
        entry = self.find(aid, file)
        data = self.read(aid, entry, cluster)
        tmp = dest.with_name(f".{dest.name}.dbkeeper-tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise DbkeeperError(f"cannot write {dest}: {exc.strerror}") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return entry

    def read(self, aid: str, entry: ArchivedWal, cluster: Cluster | None = None) -> bytes:
        """The file's bytes, decrypted, decompressed and checked against its hash, signature and header."""
        import zstandard

        where = self.store.describe(entry.object)
        if self.verify_key is not None:
            try:
                with self.store.open(entry.object + ".sig") as f:
                    signature = f.read(1024)
            except NotFound:
                raise CheckFailed(
                    f"{where} is not signed", "a verify key is configured: unsigned WAL is not served"
                ) from None
        with self.store.open(entry.object) as f:
            stored = f.read(MAX_FILE * 2)
        chunks: Iterable[bytes] = [stored]
        if entry.encrypted:
            if not self.identities:
                raise UsageError(f"{where} is encrypted", "give the age identity (--identity or DBKEEPER_AGE_IDENTITY)")
            chunks = crypto.decrypt(chunks, self.identities)
        try:
            data = zstandard.ZstdDecompressor().decompress(b"".join(chunks), max_output_size=MAX_FILE)
        except zstandard.ZstdError as exc:
            raise CheckFailed(f"{where} is damaged: {exc}") from None
        sha = hashlib.sha256(data).hexdigest()
        if sha != entry.sha256:
            raise CheckFailed(
                f"{where} is damaged: its contents hash to {sha[:16]}…, its name says {entry.sha256[:16]}…"
            )
        if self.verify_key is not None:
            text = signed_text(self.source_id, aid, entry.name.text, sha, len(data))
            if not self.verify_key.verifies(text, signature):
                raise CheckFailed(f"{where} has a bad signature", "it was not written by the holder of the signing key")
        if entry.name.kind in ("segment", "partial"):
            walfile.check_segment(entry.name, data, cluster.sysid if cluster else None)
        else:
            walfile.check_text(entry.name, data)
        return data

    # -- listing

    def files(self, aid: str) -> list[ArchivedWal]:
        """Everything archived for ``aid``, in WAL order (history files first)."""
        return sorted(self._objects(f"{self.base(aid)}/wal/"), key=lambda o: o.name.order)

    def missing(self, aid: str, timeline: int, start_segno: int, stop_segno: int, seg_size: int) -> list[str]:
        """The segments of ``timeline`` from ``start_segno`` to ``stop_segno`` (inclusive) the archive lacks."""
        have: set[str] = set()
        per = walfile.segments_per_id(seg_size)
        for log in range(start_segno // per, stop_segno // per + 1):
            prefix = f"{self.base(aid)}/wal/{timeline:08X}{log:08X}/"
            have.update(o.name.text for o in self._objects(prefix) if o.name.kind == "segment")
        return [
            name
            for segno in range(start_segno, stop_segno + 1)
            if (name := walfile.segment_name(timeline, segno, seg_size)) not in have
        ]

    def history(self, aid: str) -> dict[int, bytes]:
        """Every archived timeline history file's contents, by timeline."""
        out = {}
        for entry in self._objects(f"{self.base(aid)}/wal/history/"):
            out[entry.name.timeline] = self.read(aid, entry)
        return out
