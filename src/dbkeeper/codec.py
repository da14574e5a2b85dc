"""Compression as streaming stages over chunks of bytes.

gzip goes through ISA-L (``isal``): the output is a standard gzip member that ``gzip -d`` and ``zcat`` read,
produced about ten times faster than zlib at level 6 on dump text. zstd runs multi-threaded. Every stage takes
an iterator of chunks and yields chunks, so memory stays bounded by the chunk size whatever the dump size.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from typing import Protocol, cast

from dbkeeper.errors import CheckFailed, UsageError

COMPRESSIONS = ("gzip", "zstd", "none")
CHUNK = 1 << 20


class Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def compressor(name: str, level: int | None = None) -> Compressor:
    if name == "gzip":
        from isal import isal_zlib

        # ISA-L levels are 0-3; 1 keeps up with pg_dump while staying close to zlib -6 in size.
        return isal_zlib.compressobj(1 if level is None else level, isal_zlib.DEFLATED, 31)
    if name == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3 if level is None else level, threads=-1).compressobj()
    if name == "none":
        return _Identity()
    raise UsageError(f"unknown compression {name!r}", f"use one of: {', '.join(COMPRESSIONS)}")


def compress(name: str, chunks: Iterable[bytes], level: int | None = None) -> Iterator[bytes]:
    comp = compressor(name, level)
    for chunk in chunks:
        out = comp.compress(chunk)
        if out:
            yield out
    tail = comp.flush()
    if tail:
        yield tail


def decompress(name: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress a stream, checking it is whole: a truncated or corrupt stream raises CheckFailed."""
    if name == "none":
        yield from chunks
    elif name == "gzip":
        yield from _gunzip(chunks)
    elif name == "zstd":
        yield from _unzstd(chunks)
    else:
        raise CheckFailed(f"unknown compression {name!r} in manifest")


def _gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    from isal import isal_zlib

    dec = isal_zlib.decompressobj(31)
    in_member = False
    members = 0
    try:
        for chunk in chunks:
            data = chunk
            while data:
                in_member = True
                out = dec.decompress(data, CHUNK)
                if out:
                    yield out
                if dec.eof:  # one member ended; another may follow (concatenated gzip is valid gzip)
                    data = dec.unused_data
                    dec = isal_zlib.decompressobj(31)
                    in_member = False
                    members += 1
                else:
                    data = dec.unconsumed_tail
    except (zlib.error, _isal_error()) as exc:
        raise CheckFailed(f"the gzip stream is corrupt: {exc}") from exc
    if in_member or not members:
        raise CheckFailed(
            "the gzip stream is truncated (it ends inside a member)"
            if members or in_member
            else "the gzip stream is empty"
        )


def _isal_error() -> type[Exception]:
    from isal import isal_zlib

    return cast("type[Exception]", isal_zlib.error)  # isal's stub declares it as an instance


def _unzstd(chunks: Iterable[bytes]) -> Iterator[bytes]:
    import zstandard

    dec = zstandard.ZstdDecompressor().decompressobj()
    ended = True
    frames = 0
    try:
        for chunk in chunks:
            data = chunk
            while data:
                ended = False
                out = dec.decompress(data)
                if out:
                    yield out
                if dec.eof:
                    data = dec.unused_data
                    dec = zstandard.ZstdDecompressor().decompressobj()
                    ended = True
                    frames += 1
                else:
                    data = b""
    except zstandard.ZstdError as exc:
        raise CheckFailed(f"the zstd stream is corrupt: {exc}") from exc
    if not ended or not frames:
        raise CheckFailed(
            "the zstd stream is truncated (it ends before its last frame)"
            if frames or not ended
            else "the zstd stream is empty"
        )


def read_chunks(stream: object, size: int = CHUNK) -> Iterator[bytes]:
    """Chunks of a binary file-like until EOF."""
    read = stream.read  # type: ignore[attr-defined]
    while True:
        chunk = read(size)
        if not chunk:
            return
        yield chunk
