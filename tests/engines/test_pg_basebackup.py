"""pg_basebackup's tar stream split as it passes, and a base backup's tar unpacked from an untrusted store."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbkeeper.engines.postgres.basebackup import BackupManifest, TarSplit, TarUnpack
from dbkeeper.errors import CheckFailed

MANIFEST = json.dumps(
    {
        "PostgreSQL-Backup-Manifest-Version": 1,
        "Files": [{"Path": "PG_VERSION", "Size": 3}],
        "WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100"}],
        "Manifest-Checksum": "ab" * 32,
    }
).encode()


def _tar(members: list[tuple[str, bytes | None]], *, manifest: bytes | None = MANIFEST) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o700
                tar.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o600
                tar.addfile(info, io.BytesIO(data))
        if manifest is not None:
            info = tarfile.TarInfo("backup_manifest")
            info.size = len(manifest)
            tar.addfile(info, io.BytesIO(manifest))
    return buf.getvalue()


MEMBERS = [
    ("backup_label", b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"),
    ("global", None),
    ("global/pg_control", bytes(range(256)) * 33),
    ("PG_VERSION", b"15\n"),
    ("base/1/1259", b"\x00" * 8192 * 3 + b"x"),
    ("pg_wal", None),
]


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12))
def test_split_is_the_same_whatever_the_chunking(cuts: list[int]) -> None:
    data = _tar(MEMBERS)
    split = TarSplit()
    out = b"".join(split.split(_chunks(data, cuts)))
    assert bytes(split.manifest) == MANIFEST
    assert bytes(split.backup_label).startswith(b"START WAL LOCATION")
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        names = tar.getnames()
        assert names == [n for n, _ in MEMBERS]
        assert tar.extractfile("base/1/1259").read() == MEMBERS[4][1]  # type: ignore[union-attr]


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=1 << 16))
def test_a_stream_cut_anywhere_is_refused(cut: int) -> None:
    data = _tar(MEMBERS)
    cut = cut % (len(data) - 1024)  # short of the trailer
    with pytest.raises(CheckFailed):
        b"".join(TarSplit().split([data[:cut]]))


def test_no_manifest_and_a_damaged_header_are_refused() -> None:
    with pytest.raises(CheckFailed, match="no backup_manifest"):
        b"".join(TarSplit().split([_tar(MEMBERS, manifest=None)]))
    data = bytearray(_tar(MEMBERS))
    data[10] ^= 0xFF
    with pytest.raises(CheckFailed, match="damaged header"):
        b"".join(TarSplit().split([bytes(data)]))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=8))
def test_unpack_writes_files_and_directories_whatever_the_chunking(
    tmp_path_factory: pytest.TempPathFactory, cuts: list[int]
) -> None:
    root = tmp_path_factory.mktemp("unpack")
    split = TarSplit()
    tar = b"".join(split.split([_tar(MEMBERS)]))
    TarUnpack(root).run(_chunks(tar, cuts))
    for name, data in MEMBERS:
        path = root / name
        if data is None:
            assert path.is_dir() and (path.stat().st_mode & 0o777) == 0o700
        else:
            assert path.read_bytes() == data and (path.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/../../b", "x/../../../etc"])
def test_unpack_refuses_names_outside_the_directory(tmp_path: Path, name: str) -> None:
    root = tmp_path / "d"
    root.mkdir()
    with pytest.raises(CheckFailed, match="outside its directory"):
        TarUnpack(root).run([_tar([(name, b"x")], manifest=None)])
    assert not (tmp_path / "escape").exists()


def test_unpack_refuses_links_and_devices(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("pg_tblspc/16384")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc"
        tar.addfile(info)
    with pytest.raises(CheckFailed, match="not a file or a directory"):
        TarUnpack(tmp_path).run([buf.getvalue()])
    assert not (tmp_path / "pg_tblspc" / "16384").exists()


def test_unpack_never_writes_through_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / "PG_VERSION").write_text("mine")
    with pytest.raises(FileExistsError):
        TarUnpack(tmp_path).run([_tar([("PG_VERSION", b"15\n")], manifest=None)])
    assert (tmp_path / "PG_VERSION").read_text() == "mine"


@given(st.binary(max_size=300))
def test_a_manifest_that_is_not_postgresql_s_is_refused_cleanly(data: bytes) -> None:
    with contextlib.suppress(CheckFailed):
        BackupManifest.parse(data)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=1 << 16))
def test_unpack_refuses_a_tar_cut_anywhere(tmp_path_factory: pytest.TempPathFactory, cut: int) -> None:
    tar = b"".join(TarSplit().split([_tar(MEMBERS)]))
    cut = cut % (len(tar) - 1024)  # short of the trailer
    with pytest.raises(CheckFailed, match="the base backup's tar ended early"):
        TarUnpack(tmp_path_factory.mktemp("cut")).run([tar[:cut]])


def test_split_and_unpack_read_headers_alike(tmp_path: Path) -> None:
    """One header reader: a damaged header and data after the trailer are refused by both, each naming its
    stream."""
    data = bytearray(_tar(MEMBERS))
    data[10] ^= 0xFF
    with pytest.raises(CheckFailed, match="the base backup's tar holds a damaged header"):
        TarUnpack(tmp_path / "a").run([bytes(data)])
    tar = b"".join(TarSplit().split([_tar(MEMBERS)]))
    with pytest.raises(CheckFailed, match="the base backup's tar holds data after its end"):
        TarUnpack(tmp_path / "b").run([tar + b"\x01" + bytes(511)])
    with pytest.raises(CheckFailed, match="pg_basebackup's tar stream holds data after its end"):
        b"".join(TarSplit().split([_tar(MEMBERS) + b"\x01" + bytes(511)]))
