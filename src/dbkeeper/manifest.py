"""Backup names, the ``.sha256`` sidecar and the JSON manifest.

A backup is a data file plus two sidecars. The manifest is written last: its presence is the commit marker.
Names carry the UTC start time: ``<db>_YYYYMMDD_HHMMSS<ext>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from dbkeeper import __version__

FORMAT = 1
SHA256_SUFFIX = ".sha256"
MANIFEST_SUFFIX = ".json"

# The data file extensions dbkeeper writes, longest first so that ".sql.gz.age" wins over ".sql.gz".
_COMPRESSION_EXT = {"gzip": ".gz", "zstd": ".zst", "none": ""}
_NAME_RE = re.compile(r"^(?P<db>.+)_(?P<stamp>\d{8}_\d{6})(?P<ext>\.(?:sql|db|dump)(?:\.gz|\.zst)?(?:\.age)?)$")


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d_%H%M%S")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def data_extension(kind: str, compression: str, encrypted: bool) -> str:
    """``kind`` is ``sql`` (plain dump), ``dump`` (pg_dump custom) or ``db`` (SQLite file)."""
    return f".{kind}{_COMPRESSION_EXT[compression]}" + (".age" if encrypted else "")


def backup_name(database: str, moment: datetime, extension: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", database) or "db"
    return f"{safe}_{stamp(moment)}{extension}"


@dataclass(frozen=True)
class ParsedName:
    database: str
    stamp: datetime
    extension: str


def parse_name(name: str) -> ParsedName | None:
    """The parts of a data file name, or None for anything that is not one."""
    m = _NAME_RE.match(name)
    if not m:
        return None
    moment = datetime.strptime(m["stamp"], "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    return ParsedName(m["db"], moment, m["ext"])


def sha256_line(hexdigest: str, name: str) -> bytes:
    """The sidecar in ``sha256sum`` format: two spaces, binary mode implied; ``sha256sum -c`` accepts it."""
    return f"{hexdigest}  {name}\n".encode()


def parse_sha256_line(text: bytes, name: str) -> str:
    """The digest in a sidecar, checked to name ``name``; ValueError if malformed."""
    parts = text.decode("ascii", "replace").strip().split()
    if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{64}", parts[0]) or parts[1].lstrip("*") != name:
        raise ValueError("malformed .sha256 sidecar")
    return parts[0]


@dataclass
class Manifest:
    engine: str
    database: str
    file: str
    created_at: str
    completed_at: str
    duration_s: float
    size_bytes: int
    sha256: str
    compression: str
    encryption: dict[str, Any] | None
    dump_format: str
    server_version: str | None = None
    dump_tool_version: str | None = None
    server_encoding: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    raw_size_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT
    tool: str = f"dbkeeper {__version__}"

    @property
    def created(self) -> datetime:
        return parse_iso(self.created_at)

    def to_json(self) -> bytes:
        doc = asdict(self)
        head = {"format": doc.pop("format"), "tool": doc.pop("tool")}
        return (json.dumps({**head, **doc}, indent=2, sort_keys=False) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Parse a manifest; ValueError on anything malformed (the caller names the file)."""
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"manifest is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise ValueError("manifest is not a JSON object")
        if doc.get("format") != FORMAT:
            raise ValueError(f"manifest format {doc.get('format')!r} is not supported (expected {FORMAT})")
        known = set(cls.__dataclass_fields__)
        required = {"engine", "database", "file", "created_at", "size_bytes", "sha256", "compression"}
        missing = sorted(required - doc.keys())
        if missing:
            raise ValueError(f"manifest lacks {', '.join(missing)}")
        doc.setdefault("completed_at", doc["created_at"])
        doc.setdefault("duration_s", 0.0)
        doc.setdefault("encryption", None)
        doc.setdefault("dump_format", "plain")
        extra = {k: doc.pop(k) for k in list(doc) if k not in known}
        manifest = cls(**doc)
        manifest.extra.update(extra)
        if not isinstance(manifest.size_bytes, int) or manifest.size_bytes < 0:
            raise ValueError("manifest size_bytes is not a non-negative integer")
        if not re.fullmatch(r"[0-9a-f]{64}", str(manifest.sha256)):
            raise ValueError("manifest sha256 is not a hex digest")
        try:
            parse_iso(manifest.created_at)
        except ValueError as exc:
            raise ValueError(f"manifest created_at {manifest.created_at!r} is not an ISO UTC time") from exc
        return manifest
