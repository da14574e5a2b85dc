"""WAL files as PostgreSQL names and writes them: names, LSNs, segment arithmetic and the page header.

Pure functions over names and bytes; nothing here touches a store or a server. The archive refuses a file whose
name and contents disagree (as pgBackRest does), because a segment stored under the wrong name is replayed at
the wrong place: silently, and only on the day of the restore.

The long page header that starts every segment (``XLogLongPageHeaderData``, all fields little-endian on the
platforms PostgreSQL ships for; checked against ``pg_controldata``)::

    0  uint16 magic       2  uint16 info       4  uint32 timeline   8  uint64 page address
    16 uint32 rem_len     24 uint64 system identifier                32 uint32 segment size   36 uint32 block size
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from dbkeeper.errors import DbkeeperError

HEADER = struct.Struct("<HHIQI4xQII")  # 40 bytes
LONG_HEADER_FLAG = 0x0002
MIN_SEG_SIZE = 1 << 20
MAX_SEG_SIZE = 1 << 30

# The page magic changes with each major version's WAL format. A magic not listed here is still archived when
# the data directory says which major it is (a newer PostgreSQL); this table only lets a file pushed without
# its data directory name its major.
MAGIC_MAJOR = {0xD10D: 14, 0xD110: 15, 0xD113: 16, 0xD116: 17, 0xD118: 18}

_SEGMENT = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
_PARTIAL = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.partial$")
_BACKUP = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.([0-9A-F]{8})\.backup$")
_HISTORY = re.compile(r"^([0-9A-F]{8})\.history$")
_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


class WalRefused(DbkeeperError):
    """A file that is not what its name says (or not a WAL file at all): never stored, never served."""


@dataclass(frozen=True)
class WalName:
    """A parsed WAL file name. ``log``/``seg`` are the name's two halves (meaningless for history files)."""

    timeline: int
    log: int
    seg: int
    kind: str  # "segment" | "partial" | "backup" | "history"
    text: str
    offset: int = 0  # a .backup file's start offset within its segment

    @classmethod
    def parse(cls, name: str) -> WalName:
        """The name's parts; WalRefused for anything PostgreSQL would not archive."""
        for kind, pattern in (("segment", _SEGMENT), ("partial", _PARTIAL), ("backup", _BACKUP)):
            m = pattern.match(name)
            if m:
                tli, log, seg = (int(g, 16) for g in m.groups()[:3])
                offset = int(m.group(4), 16) if kind == "backup" else 0
                if tli == 0:
                    break
                return cls(tli, log, seg, kind, name, offset)
        m = _HISTORY.match(name)
        if m and int(m.group(1), 16) >= 2:
            return cls(int(m.group(1), 16), 0, 0, "history", name)
        raise WalRefused(
            f"{name[:80]!r} is not a WAL file name PostgreSQL archives",
            "archive_command must pass %p: a segment (24 hex digits), .partial, .backup or .history file",
        )

    @property
    def order(self) -> tuple[int, int, int, int, int, int]:
        """WAL order: history files first, then each segment followed by its .partial and .backup files."""
        rank = {"history": 0, "segment": 1, "partial": 2, "backup": 3}[self.kind]
        return (rank > 0, self.timeline, self.log, self.seg, rank, self.offset)

    @property
    def segment(self) -> str:
        """The 24-hex-digit segment a segment, .partial or .backup file belongs to."""
        return f"{self.timeline:08X}{self.log:08X}{self.seg:08X}"

    @property
    def directory(self) -> str:
        """The archive directory it is kept in: ``<TLI><LOG>`` (256 segments of 16 MB each), ``history``."""
        return "history" if self.kind == "history" else self.segment[:16]

    def segno(self, seg_size: int) -> int:
        """The segment's number counted from LSN 0 (what ``XLogFromFileName`` computes)."""
        return self.log * segments_per_id(seg_size) + self.seg


def segments_per_id(seg_size: int) -> int:
    return 0x1_0000_0000 // seg_size


def segment_name(timeline: int, segno: int, seg_size: int) -> str:
    per = segments_per_id(seg_size)
    return f"{timeline:08X}{segno // per:08X}{segno % per:08X}"


def lsn_segno(lsn: int, seg_size: int) -> int:
    return lsn // seg_size


def parse_lsn(text: str) -> int:
    m = _LSN.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not an LSN (like 0/3000028)")
    return (int(m.group(1), 16) << 32) | int(m.group(2), 16)


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def valid_seg_size(size: int) -> bool:
    return MIN_SEG_SIZE <= size <= MAX_SEG_SIZE and size & (size - 1) == 0


@dataclass(frozen=True)
class PageHeader:
    magic: int
    info: int
    timeline: int
    pageaddr: int
    sysid: int
    seg_size: int
    blcksz: int


def read_header(data: bytes) -> PageHeader:
    if len(data) < HEADER.size:
        raise WalRefused(f"only {len(data)} bytes: too short for a WAL page header")
    magic, info, tli, pageaddr, _rem, sysid, seg_size, blcksz = HEADER.unpack_from(data)
    return PageHeader(magic, info, tli, pageaddr, sysid, seg_size, blcksz)


def check_segment(name: WalName, data: bytes, sysid: int | None = None) -> PageHeader:
    """The header of a segment or .partial file, checked against its name and size (and the cluster's system
    identifier when known); WalRefused naming the first disagreement."""
    where = f"{name.text}:"
    header = read_header(data)
    if header.magic >> 8 != 0xD1:
        raise WalRefused(f"{where} no WAL page magic (0x{header.magic:04X})", "this is not a WAL segment")
    if not header.info & LONG_HEADER_FLAG:
        raise WalRefused(f"{where} the first page has no long header", "this is not the start of a segment")
    if not valid_seg_size(header.seg_size):
        raise WalRefused(f"{where} segment size {header.seg_size} in the header is not one PostgreSQL uses")
    if len(data) != header.seg_size:
        raise WalRefused(
            f"{where} {len(data)} bytes, but its header says segments are {header.seg_size}",
            "a truncated or padded file: archive the file PostgreSQL wrote",
        )
    if header.pageaddr != name.segno(header.seg_size) * header.seg_size:
        raise WalRefused(
            f"{where} its first page is for LSN {format_lsn(header.pageaddr)}, not this segment's "
            f"{format_lsn(name.segno(header.seg_size) * header.seg_size)}",
            "a segment stored under another name would be replayed at the wrong place",
        )
    # A new timeline's first segment starts as a copy of its parent's: the header may name an older timeline.
    if header.timeline == 0 or header.timeline > name.timeline:
        raise WalRefused(f"{where} its header is for timeline {header.timeline}, after the name's {name.timeline}")
    if sysid is not None and header.sysid != sysid:
        raise WalRefused(
            f"{where} written by the cluster with system identifier {header.sysid}, not this one's {sysid}",
            "another cluster's WAL: check archive_command's --source and data directory",
        )
    return header


def check_text(name: WalName, data: bytes) -> None:
    """A .history or .backup file: short text in the shape PostgreSQL writes."""
    if len(data) > 1 << 20:
        raise WalRefused(f"{name.text}: {len(data)} bytes is too large for a {name.kind} file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise WalRefused(f"{name.text}: not text", f"a {name.kind} file is text PostgreSQL writes") from None
    if name.kind == "backup" and not text.startswith("START WAL LOCATION: "):
        raise WalRefused(f"{name.text}: does not start with START WAL LOCATION", "not a backup history file")
    if name.kind == "history":
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                parts = line.split("\t")
                if len(parts) < 2 or not parts[0].strip().isdigit() or not _LSN.match(parts[1].strip()):
                    raise WalRefused(f"{name.text}: line {line[:60]!r} is not '<timeline>\\t<LSN>\\t<reason>'")


def history_entries(data: bytes) -> list[tuple[int, int]]:
    """A history file's (parent timeline, switch LSN) lines, oldest first."""
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0].strip().isdigit() and _LSN.match(parts[1].strip()):
            out.append((int(parts[0]), parse_lsn(parts[1])))
    return out
