import gzip
import os
import subprocess

import pytest

from dbkeeper import codec
from dbkeeper.errors import CheckFailed

DATA = os.urandom(50_000) * 20 + b"COPY public.t (a) FROM stdin;\n" * 50_000


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("name", codec.COMPRESSIONS)
@pytest.mark.parametrize("size", [1, 4096, 1 << 20])
def test_round_trip_any_chunking(name: str, size: int) -> None:
    data = DATA if size > 1 else DATA[:20_000]
    packed = b"".join(codec.compress(name, chunked(data, 65536)))
    assert b"".join(codec.decompress(name, chunked(packed, size))) == data


def test_gzip_output_is_standard_gzip(tmp_path) -> None:
    packed = b"".join(codec.compress("gzip", [DATA]))
    assert gzip.decompress(packed) == DATA
    (tmp_path / "x.gz").write_bytes(packed)
    assert subprocess.run(["gzip", "-t", str(tmp_path / "x.gz")]).returncode == 0


def test_concatenated_gzip_members_are_one_stream() -> None:
    packed = gzip.compress(b"first ") + gzip.compress(b"second")
    assert b"".join(codec.decompress("gzip", chunked(packed, 7))) == b"first second"


@pytest.mark.parametrize("name", ["gzip", "zstd"])
@pytest.mark.parametrize("cut", [1, 10, 1000])
def test_truncation_is_detected(name: str, cut: int) -> None:
    packed = b"".join(codec.compress(name, [DATA]))
    with pytest.raises(CheckFailed, match=r"truncated|corrupt"):
        b"".join(codec.decompress(name, [packed[:-cut]]))


@pytest.mark.parametrize("name", ["gzip", "zstd"])
def test_empty_stream_is_refused(name: str) -> None:
    with pytest.raises(CheckFailed, match="empty"):
        b"".join(codec.decompress(name, []))


def test_flipped_byte_in_gzip_is_detected() -> None:
    packed = bytearray(b"".join(codec.compress("gzip", [DATA])))
    packed[len(packed) // 2] ^= 0xFF
    with pytest.raises(CheckFailed):
        b"".join(codec.decompress("gzip", [bytes(packed)]))
