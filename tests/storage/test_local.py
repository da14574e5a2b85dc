import ctypes
import mmap
import os
from pathlib import Path

import pytest

from dbkeeper.storage import local
from dbkeeper.storage.local import LocalStore


def test_a_large_put_starts_writeback_as_it_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    advised: list[tuple[int, int, int]] = []
    monkeypatch.setattr(local, "WRITE_BEHIND", 1000)
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, off, n, advice: advised.append((off, n, advice)))
    chunks = [bytes([i]) * 300 for i in range(10)]
    assert LocalStore(tmp_path).put("obj", chunks) == 3000
    assert (tmp_path / "obj").read_bytes() == b"".join(chunks)
    # each new range goes to writeback with the one before it (on disk by then, so dropped from the cache), and
    # after the fsync the whole file is dropped
    assert [(off, n) for off, n, _ in advised] == [(0, 1200), (0, 2400), (0, 0)]
    assert {advice for *_, advice in advised} == {os.POSIX_FADV_DONTNEED}


def test_writeback_advice_that_fails_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(local, "WRITE_BEHIND", 10)
    monkeypatch.setattr(os, "posix_fadvise", refuse)
    assert LocalStore(tmp_path).put("obj", [b"x" * 100] * 3) == 300
    assert (tmp_path / "obj").read_bytes() == b"x" * 300


def test_a_stored_backup_does_not_stay_in_the_page_cache(tmp_path: Path) -> None:
    if _fstype(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip("on tmpfs the page cache is the storage")
    data = os.urandom(1 << 20) * 24
    LocalStore(tmp_path).put("obj", [data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20)])
    pages = len(data) // mmap.PAGESIZE
    assert _resident_pages(tmp_path / "obj", len(data)) < pages // 4


def _resident_pages(path: Path, size: int) -> int:
    """mincore(2) through ctypes: how many of the file's pages are in the page cache (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    finally:
        os.close(fd)
    if addr in (None, ctypes.c_void_p(-1).value):
        pytest.skip(f"mmap: errno {ctypes.get_errno()}")
    try:
        vec = (ctypes.c_ubyte * ((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE))()
        if libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(size), vec) != 0:
            pytest.skip(f"mincore: errno {ctypes.get_errno()}")
        return sum(v & 1 for v in vec)
    finally:
        libc.munmap(ctypes.c_void_p(addr), ctypes.c_size_t(size))


def _fstype(path: Path) -> str:
    """The type of the file system holding ``path``, from /proc/self/mounts (the longest mount point above it)."""
    best, kind, where = "", "", str(path.resolve())
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            _, point, fstype, *_ = line.split()
            inside = where == point or where.startswith(point.rstrip("/") + "/")
            if inside and len(point) > len(best):
                best, kind = point, fstype
    return kind
