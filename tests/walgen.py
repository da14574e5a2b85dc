"""Synthetic WAL files for tests that need many or odd ones: the long page header PostgreSQL writes, then
filler. Tests that need the real thing archive from a real cluster (tests/pitr/test_wal_cluster.py)."""

from __future__ import annotations

import os
import struct

from dbkeeper.pitr import walfile

SYSID = 7_300_000_000_000_000_001
SEG = 1 << 20  # the smallest segment size initdb allows: keeps tests fast


def segment(
    name: str,
    *,
    sysid: int = SYSID,
    seg_size: int = SEG,
    magic: int = 0xD110,
    tli: int | None = None,
    fill: bytes = b"",
) -> bytes:
    parsed = walfile.WalName.parse(name)
    pageaddr = parsed.segno(seg_size) * seg_size
    header = walfile.HEADER.pack(
        magic, walfile.LONG_HEADER_FLAG, tli or parsed.timeline, pageaddr, 0, sysid, seg_size, 8192
    )
    body = fill or os.urandom(64)
    return (header + body).ljust(seg_size, b"\0")


def write(directory: os.PathLike[str] | str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def history(parent: int, lsn: str) -> bytes:
    return f"{parent}\t{lsn}\tno recovery target specified\n".encode()


def pack_u64(value: int) -> bytes:
    return struct.pack("<Q", value)
