"""Drill records in the store: one small JSON object per drill, so that every host sees the drill history.

A drill host appends a row to its own Markdown log (drill_log) and writes the same facts here, under
``drills/<source id>/<YYYYMMDD_HHMMSS>-<8 hex>.json`` with ``if_absent`` (a record is never replaced; the random
part keeps two hosts drilling in the same second apart). ``status`` and the metrics read them back, so a
monitoring host or a fresh container knows the last drill without the drill host's disk. The ``drills/``
directory is not a source's (a source id holds no ``/``), so the catalog never takes a record for a backup set.

Whoever can write the store can write a record: ``DrillRecord.from_json`` checks every field's type and size and
raises ValueError for anything else; the reader skips such a record (it is history, not a backup to refuse).
And whoever can write the store could write a PASS that never happened, to hide failing drills: a drill host with
the signing key signs its record (``<record>.sig``, Ed25519 over a tag, the record's object name and its exact
bytes: ``signed_bytes``; written first, as a backup's manifest is signed), and a reader with a verify key
believes only records signed by it. Others are skipped as forged; ``refused`` counts those newer than every
believed record, so ``status`` can say why a drill is not seen.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dbkeeper.repo.names import SOURCE_ID_RE, stamp
from dbkeeper.storage import Store

if TYPE_CHECKING:
    from dbkeeper.signing import Signer, VerifyKey

PREFIX = "drills/"
FORMAT_VERSION = 1
MAX_BYTES = 64 * 1024
READ_LAST = 50  # records kept per source: the newest ones are what status and the slow-restore check need
MAX_READ = 4 * READ_LAST  # records read per source at most, newest first
RESULTS = ("PASS", "FAIL")
_NAME_RE = re.compile(r"^\d{8}_\d{6}-[0-9a-f]{8}\.json\Z")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")
_TEXT_LIMIT = 4096
SIG_SUFFIX = ".sig"


@dataclass(frozen=True)
class DrillRecord:
    source_id: str
    series: str  # what the drill log calls the database: the source id, or a legacy set's database
    date: str  # YYYY-MM-DDTHH:MM:SSZ, when the drill started
    result: str  # PASS | FAIL
    backup: str = ""
    backup_age: str = ""
    size: str = ""
    restore_seconds: float | None = None
    total_seconds: float | None = None
    checks: str = ""
    anomalies: str = ""
    host: str = ""
    recorded_at: str = ""  # when the record was written, to the microsecond: orders two drills of one second

    @property
    def started(self) -> datetime:
        return datetime.strptime(self.date, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)

    def to_json(self) -> bytes:
        return json.dumps({"format_version": FORMAT_VERSION, **asdict(self)}, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> DrillRecord:
        if len(raw) > MAX_BYTES:
            raise ValueError("a drill record larger than 64 kB")
        try:
            doc = json.loads(raw)
        except RecursionError:
            raise ValueError("nested too deeply") from None
        if not isinstance(doc, dict) or doc.get("format_version") != FORMAT_VERSION:
            raise ValueError("not a drill record of format_version 1")
        text: dict[str, str] = {}
        for key in (
            "source_id",
            "series",
            "date",
            "result",
            "backup",
            "backup_age",
            "size",
            "checks",
            "anomalies",
            "recorded_at",
        ):
            value = doc.get(key, "")
            if not isinstance(value, str) or len(value) > _TEXT_LIMIT:
                raise ValueError(f"{key}: not a string of at most {_TEXT_LIMIT} characters")
            text[key] = value
        host = doc.get("host", "")
        if not isinstance(host, str) or len(host) > 255:
            raise ValueError("host: not a host name")
        if not SOURCE_ID_RE.match(text["source_id"]) or not text["series"]:
            raise ValueError("source_id or series missing")
        if not _TIME_RE.match(text["date"]) or text["result"] not in RESULTS:
            raise ValueError("date or result malformed")
        numbers: dict[str, float | None] = {}
        for key in ("restore_seconds", "total_seconds"):
            value = doc.get(key)
            ok = value is None or (
                isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
            )
            if not ok:
                raise ValueError(f"{key}: not a number of seconds")
            numbers[key] = None if value is None else float(value)
        record = cls(
            **text, host=host, restore_seconds=numbers["restore_seconds"], total_seconds=numbers["total_seconds"]
        )
        record.started  # noqa: B018 - a date that matches the pattern but is no date (month 13) raises here
        return record


def record_name(record: DrillRecord) -> str:
    return f"{PREFIX}{record.source_id}/{stamp(record.started)}-{secrets.token_hex(4)}.json"


def put(store: Store, record: DrillRecord, signer: Signer | None = None) -> str:
    """Write ``record`` as a new object (never over another), its signature first when ``signer`` is given; its
    name."""
    record = replace(record, recorded_at=datetime.now(UTC).isoformat())
    name = record_name(record)
    raw = record.to_json()
    if signer is not None:
        store.put(name + SIG_SUFFIX, [signer.sign(signed_bytes(name, raw))], if_absent=True)
    store.put(name, [raw], if_absent=True)
    return name


def signed_bytes(name: str, raw: bytes) -> bytes:
    """What a record's signature covers: a tag (so it is never a manifest's signature), the record's object name
    (so a genuine record copied under another name, a later date, does not verify) and its bytes."""
    return b"dbkeeper drill record\n" + name.encode() + b"\n" + raw


@dataclass
class Found:
    """What ``read`` found: the records believed, oldest first, and, with a verify key, how many newer ones were
    not (no signature, one it does not verify, unreadable, or filed under a name that is not theirs): a forger's
    way to hide the newest drill."""

    records: list[DrillRecord]
    refused_by: dict[str, int] = field(default_factory=dict)  # source id -> records not believed

    @property
    def refused(self) -> int:
        return sum(self.refused_by.values())

    def of(self, source: str) -> Found:
        """What was found of one source."""
        return Found([r for r in self.records if r.source_id == source], {source: self.refused_by.get(source, 0)})


def read(store: Store, source: str | None = None, verify_key: VerifyKey | None = None) -> Found:
    """The newest ``READ_LAST`` believed records of every source (or of ``source``), oldest first. A record that
    does not read, whose name is not its own (another source's directory, another date), or, with
    ``verify_key``, that it does not verify is skipped; with a verify key, those newer than every believed record
    are counted in ``refused``. At most ``MAX_READ`` records are read per source, newest first, so junk planted
    under late names cannot make a reader read the whole history (it is counted instead)."""
    listed = store.list(f"{PREFIX}{source}/" if source else PREFIX)
    signed = {obj.name[: -len(SIG_SUFFIX)] for obj in listed if obj.name.endswith(SIG_SUFFIX)}
    by_source: dict[str, list[str]] = {}
    for obj in listed:
        parts = obj.name[len(PREFIX) :].split("/")
        if len(parts) == 2 and SOURCE_ID_RE.match(parts[0]) and _NAME_RE.match(parts[1]) and obj.size <= MAX_BYTES:
            by_source.setdefault(parts[0], []).append(obj.name)
    found = Found([])
    for source_id, names in by_source.items():
        believed: list[DrillRecord] = []
        for name in sorted(names, reverse=True)[:MAX_READ]:
            record = _believed(store, name, source_id, verify_key, name in signed)
            if record is not None:
                believed.append(record)
                if len(believed) == READ_LAST:
                    break
            elif verify_key is not None and not believed:
                found.refused_by[source_id] = found.refused_by.get(source_id, 0) + 1
        found.records += believed
    found.records.sort(key=lambda r: (r.date, r.recorded_at))
    return found


def _believed(
    store: Store, name: str, source_id: str, verify_key: VerifyKey | None, has_signature: bool
) -> DrillRecord | None:
    from dbkeeper.errors import DbkeeperError
    from dbkeeper.signing import SIGNATURE_BYTES

    try:
        with store.open(name) as f:
            raw = f.read(MAX_BYTES + 1)
        record = DrillRecord.from_json(raw)
        if record.source_id != source_id or not name.rpartition("/")[2].startswith(stamp(record.started)):
            return None  # filed under another source's name, or another date, than its own
        if verify_key is not None:
            if not has_signature:
                return None
            with store.open(name + SIG_SUFFIX) as f:
                signature = f.read(SIGNATURE_BYTES + 1)
            if not verify_key.verifies(signed_bytes(name, raw), signature):
                return None
    except (DbkeeperError, ValueError):
        return None
    return record
