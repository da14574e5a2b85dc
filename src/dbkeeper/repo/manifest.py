"""The manifest: a backup set's JSON description, written last as its commit marker. One schema, one reader.

Whoever can write the store can write a manifest, so ``Manifest.from_json`` trusts nothing: the document must be
a JSON object of at most 16 MiB, of a format version this dbkeeper knows, and every field must have its type and
range (a count is a non-negative integer, a time is ``YYYY-MM-DDTHH:MM:SSZ``, a digest 64 hex digits, a nesting
no deeper than JSON's usual needs). Anything else raises ``ManifestError`` with the reason, which the catalog
shows as a broken entry: never a traceback, never counted by retention, never deleted by it.

Versions: ``format_version`` 2 (this one) adds ``source_id``; within it, ``selection`` (absent or null: the whole
database) records a partial backup's pg_dump selection, so ``list`` and ``verify`` show it as partial; a reader
that predates it ignores it, as it ignores any unknown field. Format 1 manifests (``"format": 1``, from stores
written before source ids) still read, with ``source_id`` None. Unknown fields are ignored, so a newer minor
addition does not break an older reader; a newer ``format_version`` is refused by name.

Example (format 2)::

    {"format_version": 2, "tool": "dbkeeper 0.2.0", "engine": "postgresql", "source_id": "casino-eu",
     "database": "casino", "file": "casino_20261127_020000.sql.gz", "created_at": "2026-11-27T02:00:00Z",
     "completed_at": "2026-11-27T02:00:12Z", "duration_s": 12.4, "size_bytes": 123456, "sha256": "<64 hex>",
     "raw_size_bytes": 987654, "compression": "gzip", "encryption": null, "dump_format": "plain",
     "server_version": "15.18", "dump_tool_version": "15.18", "server_encoding": "UTF8",
     "source": {"host": "db1", "port": 5432, "user": "app"},
     "row_counts": {"public.users": 3000}, "extra": {"lc_collate": "C.UTF-8", "lc_ctype": "C.UTF-8"}}
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from dbkeeper import __version__
from dbkeeper.repo.names import SOURCE_ID_RE

FORMAT_VERSION = 2
MAX_BYTES = 16 << 20
MAX_DEPTH = 32
ENGINES = ("postgresql", "sqlite")
COMPRESSIONS = ("gzip", "zstd", "none")
DUMP_FORMATS = ("plain", "custom", "globals", "sqlite")
SELECTION_KEYS = ("tables", "exclude_tables", "schemas", "exclude_schemas", "exclude_table_data", "pg_dump_options")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")  # \Z: "$" would let a trailing newline in
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")


class ManifestError(ValueError):
    """A manifest that does not fit the schema; the message says which field and why."""


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Encryption:
    format: str  # "age"
    recipients: tuple[str, ...]


@dataclass
class Manifest:
    engine: str
    database: str
    file: str  # the data file's own name (the manifest sits beside it)
    created_at: str
    completed_at: str
    duration_s: float
    size_bytes: int
    sha256: str
    compression: str
    encryption: dict[str, Any] | None
    dump_format: str
    source_id: str | None = None
    server_version: str | None = None
    dump_tool_version: str | None = None
    server_encoding: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    raw_size_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, list[str]] | None = None  # a partial backup: pg_dump's -t/-T/-n/-N/… (None: whole)
    format_version: int = FORMAT_VERSION
    tool: str = f"dbkeeper {__version__}"

    @property
    def created(self) -> datetime:
        return parse_iso(self.created_at)

    @property
    def completed(self) -> datetime:
        return parse_iso(self.completed_at)

    @property
    def partial(self) -> bool:
        """The backup holds part of its database (a table or schema selection, excluded data, or pg_dump
        options that leave something out)."""
        return bool(self.selection and any(self.selection.values()))

    def describe_selection(self) -> str:
        """A partial backup's selection as pg_dump's flags (``-t public.users -N audit``); "" for a whole one."""
        if not self.selection:
            return ""
        flags = {"tables": "-t", "exclude_tables": "-T", "schemas": "-n", "exclude_schemas": "-N"}
        words = [f"{flags.get(k, '--exclude-table-data')} {p}" for k in SELECTION_KEYS[:5] for p in self.selection[k]]
        return " ".join(words + self.selection["pg_dump_options"])

    @property
    def name(self) -> str:
        """The set's name in the store: ``<source_id>/<file>`` (a legacy set's: its file)."""
        return f"{self.source_id}/{self.file}" if self.source_id else self.file

    def to_json(self) -> bytes:
        doc = asdict(self)
        head = {"format_version": doc.pop("format_version"), "tool": doc.pop("tool")}
        text = json.dumps({**head, **doc}, indent=2, ensure_ascii=False) + "\n"
        try:
            return text.encode()
        except UnicodeEncodeError:  # a LATIN1 dump's table name kept as its bytes (surrogates): escape, lossless
            return (json.dumps({**head, **doc}, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Parse and check a manifest; ManifestError on anything that does not fit (the caller names the file)."""
        if len(data) > MAX_BYTES:
            raise ManifestError(f"manifest is larger than {MAX_BYTES >> 20} MiB")
        try:
            doc = json.loads(data, parse_constant=_no_constant)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"manifest is not valid JSON: {exc}") from None
        except (RecursionError, ValueError) as exc:  # ValueError: NaN/Infinity, or an integer of 4300+ digits
            raise ManifestError(f"manifest is not usable JSON: {str(exc)[:100]}") from None
        if not isinstance(doc, dict):
            raise ManifestError("manifest is not a JSON object")
        if _depth(doc) > MAX_DEPTH:
            raise ManifestError(f"manifest is nested deeper than {MAX_DEPTH} levels")
        return _Reader(doc).manifest()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


class _Reader:
    """Takes each field out of the parsed document with its type checked."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def manifest(self) -> Manifest:
        version = self._version()
        created_at = self._time("created_at")
        return Manifest(
            engine=self._choice("engine", ENGINES),
            database=self._text("database"),
            file=self._file(),
            created_at=created_at,
            completed_at=self._time("completed_at") if "completed_at" in self.doc else created_at,
            duration_s=self._number("duration_s", default=0.0),
            size_bytes=self._count("size_bytes"),
            sha256=self._match("sha256", _HEX64, "a SHA-256 hex digest"),
            compression=self._choice("compression", COMPRESSIONS),
            encryption=self._encryption(),
            dump_format=self._choice("dump_format", DUMP_FORMATS, default="plain"),
            source_id=self._match("source_id", SOURCE_ID_RE, "a source id") if version >= 2 else None,
            server_version=self._optional_text("server_version"),
            dump_tool_version=self._optional_text("dump_tool_version"),
            server_encoding=self._optional_text("server_encoding"),
            source=self._scalars("source"),
            row_counts=self._counts("row_counts"),
            raw_size_bytes=self._count("raw_size_bytes") if self.doc.get("raw_size_bytes") is not None else None,
            extra=self._object("extra"),
            selection=self._selection(),
            format_version=version,
            tool=self._optional_text("tool") or "unknown",
        )

    def _version(self) -> int:
        version = self.doc.get("format_version", self.doc.get("format"))
        if version in (1, 2) and type(version) is int:
            return version
        if type(version) is int and version > FORMAT_VERSION:
            raise ManifestError(f"manifest format {version} is newer than this dbkeeper reads: upgrade dbkeeper")
        raise ManifestError(f"manifest format {_show(version)} is not a format dbkeeper wrote")

    def _get(self, key: str) -> Any:
        if key not in self.doc or self.doc[key] is None:
            raise ManifestError(f"manifest lacks {key}")
        return self.doc[key]

    def _text(self, key: str, limit: int = 4096) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not value or len(value) > limit:
            raise ManifestError(f"manifest {key} is {_show(value)}, not a non-empty string")
        return value

    def _optional_text(self, key: str) -> str | None:
        return None if self.doc.get(key) is None else self._text(key)

    def _choice(self, key: str, allowed: tuple[str, ...], default: str | None = None) -> str:
        if default is not None and self.doc.get(key) is None:
            return default
        value = self._get(key)
        if value not in allowed:
            raise ManifestError(f"manifest {key} is {_show(value)}, not one of {', '.join(allowed)}")
        return str(value)

    def _match(self, key: str, pattern: re.Pattern[str], what: str) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not pattern.match(value):
            raise ManifestError(f"manifest {key} is {_show(value)}, not {what}")
        return value

    def _time(self, key: str) -> str:
        value = self._match(key, _TIME_RE, "a UTC time like 2026-11-27T02:00:00Z")
        try:
            parse_iso(value)
        except ValueError:
            raise ManifestError(f"manifest {key} {value!r} is not a valid time") from None
        return value

    def _file(self) -> str:
        value = self._text("file", 300)
        if "/" in value or "\\" in value or value.startswith(".") or any(ord(c) < 32 or c == "\x7f" for c in value):
            raise ManifestError(f"manifest file is {_show(value)}, not a file name")
        return value

    def _count(self, key: str) -> int:
        value = self._get(key)
        if type(value) is not int or value < 0 or value >= 2**63:
            raise ManifestError(f"manifest {key} is {_show(value)}, not a count")
        return value

    def _number(self, key: str, default: float) -> float:
        value = self.doc.get(key, default)
        if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
            raise ManifestError(f"manifest {key} is {_show(value)}, not a number of seconds")
        return float(value)

    def _object(self, key: str) -> dict[str, Any]:
        value = self.doc.get(key, {})
        if not isinstance(value, dict):
            raise ManifestError(f"manifest {key} is {_show(value)}, not an object")
        return value

    def _scalars(self, key: str) -> dict[str, Any]:
        value = self._object(key)
        for k, v in value.items():
            if v is not None and type(v) not in (str, int, float, bool):
                raise ManifestError(f"manifest {key}.{k} is {_show(v)}, not a plain value")
        return value

    def _counts(self, key: str) -> dict[str, int]:
        value = self._object(key)
        for table, n in value.items():
            if not table or type(n) is not int or n < 0:
                raise ManifestError(f"manifest {key}[{_show(table)}] is {_show(n)}, not a count")
        return value

    def _selection(self) -> dict[str, list[str]] | None:
        """``selection``: absent or null for a whole database; else an object of exactly SELECTION_KEYS, each a
        list of non-empty strings (patterns and pg_dump options, as the backup was told)."""
        value = self.doc.get("selection")
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) != set(SELECTION_KEYS):
            raise ManifestError(f"manifest selection is {_show(value)}, not an object of {', '.join(SELECTION_KEYS)}")
        for key in SELECTION_KEYS:
            items = value[key]
            if not isinstance(items, list) or len(items) > 10_000:
                raise ManifestError(f"manifest selection.{key} is {_show(items)}, not a list")
            for item in items:
                if not isinstance(item, str) or not item or len(item) > 4096:
                    raise ManifestError(f"manifest selection.{key} holds {_show(item)}, not a pattern or an option")
        return {key: list(value[key]) for key in SELECTION_KEYS}

    def _encryption(self) -> dict[str, Any] | None:
        value = self.doc.get("encryption")
        if value is None:
            return None
        recipients = value.get("recipients") if isinstance(value, dict) else None
        if (
            not isinstance(value, dict)
            or value.get("format") != "age"
            or not isinstance(recipients, list)
            or not recipients
            or not all(isinstance(r, str) and r for r in recipients)
        ):
            raise ManifestError(f"manifest encryption is {_show(value)}, not age with a list of recipients")
        return value


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True) if not isinstance(value, dict | list) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."
