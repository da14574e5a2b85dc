import ctypes
import mmap
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dbkeeper.errors import StoreError
from dbkeeper.storage import TEMP_MARK, Leftover, local
from dbkeeper.storage.local import LocalStore
from store_cases import kill_writer, start_local_writer


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


def test_a_running_writers_file_is_in_use_and_kept(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    writer = start_local_writer(tmp_path, "db/obj")
    try:
        [left] = store.leftovers()
        assert (left.name, left.in_use, left.size) == ("db/obj", True, 100_000)
        assert left.key.startswith("db/.obj.") and left.key.endswith(TEMP_MARK)
        with pytest.raises(StoreError, match="being written") as info:
            store.remove_leftover(left)
        assert info.value.hint
        assert (tmp_path / left.key).exists()
        assert store.list() == []
    finally:
        kill_writer(writer)
    [dead] = store.leftovers()
    assert dead.key == left.key and not dead.in_use
    store.remove_leftover(dead)
    assert store.leftovers() == [] and os.listdir(tmp_path / "db") == []


def test_a_put_holds_its_temporary_files_lock_until_renamed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    seen = []

    def chunks() -> Iterator[bytes]:
        yield b"x"
        seen.extend(store.leftovers())
        yield b"y"

    store.put("obj", chunks())
    assert [(o.name, o.in_use) for o in seen] == [("obj", True)]
    assert store.leftovers() == []


def test_remove_leftover_touches_only_temporary_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("db/obj", [b"x"])
    for key in ("db/obj", "../outside.dbkeeper-tmp", f"db/../.obj.0badcafe{TEMP_MARK}"):
        forged = Leftover("temporary file", "db/obj", key, 1, datetime.now(UTC))
        with pytest.raises(StoreError):
            store.remove_leftover(forged)
    assert store.open("db/obj").read() == b"x"


def test_modes_and_nested_directories(tmp_path: Path) -> None:
    root = tmp_path / "store"
    LocalStore(root).put("a/b/c", [b"x"])
    for d in (root, root / "a", root / "a" / "b"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "a" / "b" / "c").stat().st_mode) == 0o600


def test_links_below_the_root_are_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    root = tmp_path / "store"
    store = LocalStore(root)
    store.put("real/obj", [b"x"])
    (root / "linkdir").symlink_to(outside)
    (root / "real" / "linkfile").symlink_to(outside / "secret")
    (outside / f".obj.0badcafe{TEMP_MARK}").write_bytes(b"t")
    assert [o.name for o in store.list()] == ["real/obj"]
    assert store.leftovers() == []
    with pytest.raises(StoreError, match="link"):
        store.put("linkdir/new", [b"y"])
    assert sorted(os.listdir(outside)) == [f".obj.0badcafe{TEMP_MARK}", "secret"]


def test_a_missing_root_is_empty_and_created_on_put(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "not" / "yet")
    assert store.list() == [] and store.list("a/") == [] and store.leftovers() == []
    store.put("a/b", [b"x"], size_hint=1)
    assert [o.name for o in store.list("a/")] == ["a/b"]


def test_a_directory_swapped_for_a_link_after_the_scan_does_not_lead_cleanup_outside(tmp_path: Path) -> None:
    """leftovers() saw app/.x…dbkeeper-tmp; before remove_leftover runs, app/ becomes a link to a directory outside
    the store holding a file of the same name. That file is not the store's to remove."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "store"
    root.mkdir()
    (root / "app").mkdir()
    temp = f".app_20261127_020000.db.gz.0badcafe{TEMP_MARK}"
    (root / "app" / temp).write_bytes(b"dead writer's")
    (outside / temp).write_bytes(b"not the store's")
    store = LocalStore(root)
    [left] = store.leftovers()
    (root / "app").rename(root / "app.old")
    (root / "app").symlink_to(outside)
    with pytest.raises(StoreError, match="link"):
        store.remove_leftover(left)
    assert (outside / temp).read_bytes() == b"not the store's"


class _Swapping(LocalStore):
    """Swaps ``app/`` for a link to a directory outside the store right after the put's directory checks, as a
    hostile writer of the store racing a backup could."""

    def __init__(self, path: Path, outside: Path) -> None:
        super().__init__(path)
        self.outside = outside

    def _dir(self, name: str, *, create: bool) -> int:
        fd = super()._dir(name, create=create)
        (self.root / "app").rename(self.root / "app.old")
        (self.root / "app").symlink_to(self.outside)
        return fd


def test_a_directory_swapped_for_a_link_during_a_put_or_delete_keeps_it_inside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "app_20261127_020000.db.gz").write_bytes(b"not the store's")
    root = tmp_path / "store"
    LocalStore(root).put("app/app_20261127_020000.db.gz", [b"backup"])
    _Swapping(root, outside).put("app/app_20261127_020001.db.gz", [b"new"], if_absent=True)
    assert sorted(os.listdir(outside)) == ["app_20261127_020000.db.gz"]  # nothing written through the link
    assert (root / "app.old" / "app_20261127_020001.db.gz").read_bytes() == b"new"  # where it was checked
    (root / "app").unlink()
    (root / "app.old").rename(root / "app")
    _Swapping(root, outside).delete("app/app_20261127_020000.db.gz")
    assert (outside / "app_20261127_020000.db.gz").read_bytes() == b"not the store's"
    assert not (root / "app.old" / "app_20261127_020000.db.gz").exists()


def test_files_whose_names_no_object_may_have_are_not_listed(tmp_path: Path) -> None:
    """As on S3: a planted file named with a newline or a backslash is no object (it could not be opened or
    deleted by its name), so ``list`` never shows it, and nothing can print it as a line of its own."""
    store = LocalStore(tmp_path)
    store.put("app/app_20261127_020000.db.gz", [b"x"])
    (tmp_path / "app" / "ap\np_20261127_020000.db.gz").write_bytes(b"y")
    (tmp_path / "app" / "a\\b").write_bytes(b"y")
    (tmp_path / "app" / "tab\there").write_bytes(b"y")
    assert [o.name for o in store.list()] == ["app/app_20261127_020000.db.gz"]
    assert [o.name for o in store.list("app/")] == ["app/app_20261127_020000.db.gz"]
