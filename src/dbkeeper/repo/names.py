"""How a backup set's objects are named in a store: the only code that builds or reads those names.

Layout (format 2): every source has its own directory, named by its source id, and a backup set is three objects
in it::

    casino-eu/casino_20261127_020000.sql.gz          the data
    casino-eu/casino_20261127_020000.sql.gz.sha256   "<hex>  casino_20261127_020000.sql.gz" (sha256sum -c, run there)
    casino-eu/casino_20261127_020000.sql.gz.json     the manifest, written last: the commit marker
    casino-eu/casino_20261127_020000.sql.gz.json.sig an Ed25519 signature over the manifest's bytes (signed sets)

The data file keeps the readable ``<db>_YYYYMMDD_HHMMSS`` (UTC start time); a second set started within the same
second of the same source gets ``-2``, ``-3`` … after the time, so two runs never share a name. Stores written
before source ids existed hold the same names at the top level (the legacy layout): they are read as the source
whose id is the database name, and never written any more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

SHA256_SUFFIX = ".sha256"
MANIFEST_SUFFIX = ".json"
SIGNATURE_SUFFIX = ".json.sig"
SIDECARS = (SHA256_SUFFIX, MANIFEST_SUFFIX, SIGNATURE_SUFFIX)

_COMPRESSION_EXT = {"gzip": ".gz", "zstd": ".zst", "none": ""}
_DATA_RE = re.compile(
    r"^(?P<db>[^/]+)_(?P<stamp>\d{8}_\d{6})(?:-(?P<seq>[1-9]\d{0,5}))?"
    r"(?P<ext>\.(?:sql|db|dump)(?:\.gz|\.zst)?(?:\.age)?)\Z"
)
GLOBALS_LABEL = ".globals"
# The point-in-time recovery tree's own top directory: never a source of logical backups, and never read by
# their listings.
PITR_ROOT = "pitr"
SOURCE_ID_RE = re.compile(r"^(?!pitr\Z)[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")  # \Z: "$" would let a trailing newline in


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d_%H%M%S")


def data_extension(kind: str, compression: str, encrypted: bool) -> str:
    """``kind`` is ``sql`` (plain dump), ``dump`` (pg_dump custom) or ``db`` (SQLite file)."""
    return f".{kind}{_COMPRESSION_EXT[compression]}" + (".age" if encrypted else "")


def file_label(database: str) -> str:
    """The database name as it appears in file names: anything but letters, digits, ``.``, ``_`` and ``-`` becomes
    ``_``. Only readable: the source's directory and the manifest say which database it really is."""
    # A server's roles (``<db>.globals``) keep their suffix whatever the length: it makes them a series of their
    # own (catalog), and a 63-character database name would otherwise cut it off.
    suffix = GLOBALS_LABEL if database.endswith(GLOBALS_LABEL) and database != GLOBALS_LABEL else ""
    stem = database[: -len(suffix)] if suffix else database
    label = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip(".")[: 64 - len(suffix)]
    return (label or "db") + suffix


@dataclass(frozen=True)
class SetName:
    """The parts of a backup set's data object name."""

    source_id: str | None  # None: the legacy layout (top level of the store)
    label: str  # the database as written in the file name
    started: datetime
    seq: int  # 1 for the first set of that second
    extension: str

    @property
    def file(self) -> str:
        """The data file's own name, without the source directory."""
        seq = f"-{self.seq}" if self.seq > 1 else ""
        return f"{self.label}_{stamp(self.started)}{seq}{self.extension}"

    @property
    def name(self) -> str:
        """The data object's name in the store."""
        return f"{self.source_id}/{self.file}" if self.source_id else self.file

    @property
    def legacy(self) -> bool:
        return self.source_id is None


def new_name(source_id: str, database: str, started: datetime, extension: str, seq: int = 1) -> SetName:
    return SetName(source_id, file_label(database), started.astimezone(UTC), seq, extension)


def parse(name: str) -> SetName | None:
    """The parts of a data object name (either layout), or None for anything that is not one."""
    source_id, _, file = name.rpartition("/")
    if source_id and not SOURCE_ID_RE.match(source_id):
        return None
    m = _DATA_RE.match(file)
    if not m:
        return None
    try:
        started = datetime.strptime(m["stamp"], "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    parsed = SetName(source_id or None, m["db"], started, int(m["seq"] or 1), m["ext"])
    # Only the name a writer would give this set: "-1", "-01" or year 1 ("1", not "0001") would parse to another
    # name, and the catalog would look for objects that are not there.
    return parsed if parsed.name == name else None


def sidecar(name: str) -> str:
    return name + SHA256_SUFFIX


def manifest(name: str) -> str:
    return name + MANIFEST_SUFFIX


def signature(name: str) -> str:
    return name + SIGNATURE_SUFFIX


def all_files(name: str) -> tuple[str, str, str, str]:
    """Every object a set may have, in deletion order: the manifest, the signature (signed sets only), the
    sidecar, the data (see ``files``)."""
    return (manifest(name), signature(name), sidecar(name), name)


def files(name: str) -> tuple[str, str, str]:
    """The set's objects in deletion order: manifest first (the set stops counting at once), then the sidecar,
    then the data, so a deletion stopped half way leaves an incomplete set, never a good-looking one."""
    return (manifest(name), sidecar(name), name)


def basename(name: str) -> str:
    return name.rpartition("/")[2]


def sha256_line(hexdigest: str, name: str) -> bytes:
    """The sidecar in ``sha256sum`` format (two spaces, binary mode implied), naming the file beside it."""
    return f"{hexdigest}  {basename(name)}\n".encode()


def parse_sha256_line(text: bytes, name: str) -> str:
    """The digest in a sidecar, checked to name ``name``'s file; ValueError if malformed."""
    if len(text) > 4096:
        raise ValueError("malformed .sha256 sidecar (too long)")
    parts = text.decode("ascii", "replace").strip().split()
    if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{64}", parts[0]) or parts[1].lstrip("*") != basename(name):
        raise ValueError("malformed .sha256 sidecar")
    return parts[0]
