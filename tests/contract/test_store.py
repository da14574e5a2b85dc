"""One suite that every Store runs (restic's backend/test/suite.go): the contract in storage/__init__.py."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from dbkeeper.errors import AlreadyExists, NotFound, StoreError, StoreMissing
from dbkeeper.storage import TEMP_MARK, DryRunStore, RetryingStore
from dbkeeper.storage.s3 import S3Store
from store_cases import StoreCase

MiB = 1024 * 1024
BIG = 11 * MiB + 123  # three parts of 5 MiB on S3


def chunked(data: bytes, size: int = 64 * 1024 + 7) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def read_all(case: StoreCase, name: str) -> bytes:
    with case.store.open(name) as f:
        return f.read()


@pytest.mark.parametrize("size", [0, 1, 1000, BIG], ids=["empty", "one", "small", "multipart"])
def test_put_then_open_round_trips(case: StoreCase, size: int) -> None:
    data = os.urandom(size)
    assert case.store.put("obj.sql.gz", chunked(data)) == size
    assert read_all(case, "obj.sql.gz") == data
    [info] = case.store.list()
    assert (info.name, info.size) == ("obj.sql.gz", size)
    assert info.modified.tzinfo is not None


def test_chunks_of_any_shape(case: StoreCase) -> None:
    data = os.urandom(BIG)
    pieces = [data[:1], b"", data[1 : 6 * MiB], data[6 * MiB :]]  # empty and larger-than-a-part chunks
    assert case.store.put("odd", iter(pieces)) == len(data)
    assert read_all(case, "odd") == data


def test_open_streams_in_pieces(case: StoreCase) -> None:
    data = os.urandom(BIG)
    case.store.put("obj", chunked(data))
    got = bytearray()
    f = case.store.open("obj")
    with f:
        while piece := f.read(100_000):
            assert len(piece) <= 100_000
            got += piece
    assert f.closed
    assert got == data


def test_put_replaces_an_existing_object(case: StoreCase) -> None:
    case.store.put("obj", [b"old"])
    case.store.put("obj", [b"new", b"er"])
    assert read_all(case, "obj") == b"newer"
    assert [o.name for o in case.store.list()] == ["obj"]


def test_list_shows_only_complete_objects(case: StoreCase) -> None:
    case.store.put("done", [b"x"])
    seen_during_put = []

    def slow() -> Iterator[bytes]:
        for i in range(12):
            if i == 8:  # more than one 5 MiB part is already on its way
                seen_during_put.append([o.name for o in case.store.list()])
            yield os.urandom(MiB)

    case.store.put("late", slow())
    assert seen_during_put == [["done"]]
    assert [o.name for o in case.store.list()] == ["done", "late"]


class Boom(Exception):
    pass


@pytest.mark.parametrize("fail_after", [0, 3 * MiB, 8 * MiB], ids=["at-once", "first-part", "multipart"])
@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_failed_put_leaves_nothing(case: StoreCase, fail_after: int, error: type[BaseException]) -> None:
    case.store.put("obj", [b"previous version"])

    def failing() -> Iterator[bytes]:
        yield from chunked(os.urandom(fail_after), MiB)
        raise error("producer died")

    with pytest.raises(error):
        case.store.put("obj", failing())
    with pytest.raises(error):
        case.store.put("new", failing())
    assert [o.name for o in case.store.list()] == ["obj"]
    assert read_all(case, "obj") == b"previous version"
    assert case.leftovers() == []
    assert case.store.leftovers() == []


def test_delete_is_idempotent(case: StoreCase) -> None:
    case.store.put("obj", [b"x"])
    case.store.put("keep", [b"y"])
    case.store.delete("obj")
    case.store.delete("obj")
    case.store.delete("never-existed")
    assert [o.name for o in case.store.list()] == ["keep"]


def test_open_missing_raises_not_found(case: StoreCase) -> None:
    with pytest.raises(NotFound):
        case.store.open("missing")
    case.store.put("present", [b"x"])
    with pytest.raises(NotFound):
        case.store.open("missing")


def test_list_of_an_empty_store(case: StoreCase) -> None:
    assert case.store.list() == []


def test_exists_tells_a_missing_store_from_an_empty_one(case: StoreCase) -> None:
    """What lets list, prune and status refuse a mistyped --store instead of calling it empty."""
    case.store.put("x", [b"x"])
    case.store.delete("x")
    assert case.store.exists()  # empty, but there
    missing = case.missing()
    assert not missing.exists() and not RetryingStore(missing).exists() and not DryRunStore(missing).exists()
    with pytest.raises(StoreMissing) if isinstance(missing, S3Store) else contextlib.nullcontext():
        assert missing.list() == []  # a directory store lists a missing root as empty: backup creates it
    assert not missing.exists()  # asking created nothing


def test_list_names_every_object_relative_to_the_root(case: StoreCase) -> None:
    case.store.put("a.sql.gz", [b"a"])
    case.plant("sub/nested.sql.gz", b"n")  # a "directory" below the root
    case.plant(".hidden", b"h")
    case.plant("sub/.hidden", b"h")
    case.plant(f"sub/.x.sql.gz.1234abcd{TEMP_MARK}", b"t")
    case.plant("../outside", b"o")  # next to the root
    case.plant("../host1-sibling", b"s")  # shares the root's name as a string prefix
    assert [o.name for o in case.store.list()] == ["a.sql.gz", "sub/nested.sql.gz"]


def test_list_skips_the_directories_it_is_told_to(case: StoreCase) -> None:
    names = ["pitr/main/1-15/wal/0000000100000000/x", "pitr/y", "app/a.sql.gz", "pitrx/b", "top.sql.gz", "app/pitr/c"]
    for name in names:
        case.store.put(name, [b"x"])
    everything = [o.name for o in case.store.list()]
    assert everything == sorted(names)
    assert [o.name for o in case.store.list(skip=("pitr/",))] == ["app/a.sql.gz", "app/pitr/c", "pitrx/b", "top.sql.gz"]
    assert [o.name for o in case.store.list("app/", skip=("app/pitr/",))] == ["app/a.sql.gz"]


def test_names_with_slashes_round_trip_and_list_by_prefix(case: StoreCase) -> None:
    names = ["z/y/x/w", "ab", "a/b2", "a/b/d", "a/b/c.sql.gz"]
    for name in names:
        assert case.store.put(name, [name.encode()]) == len(name)
    assert [o.name for o in case.store.list()] == sorted(names)
    assert [o.name for o in case.store.list("a/b")] == ["a/b/c.sql.gz", "a/b/d", "a/b2"]  # a partial name
    assert [o.name for o in case.store.list("a/b/")] == ["a/b/c.sql.gz", "a/b/d"]
    assert [o.name for o in case.store.list("a")] == ["a/b/c.sql.gz", "a/b/d", "a/b2", "ab"]
    assert [o.name for o in case.store.list("z/y/")] == ["z/y/x/w"]
    assert case.store.list("a/b/c.sql.gz") == case.store.list("a/b/c")
    assert case.store.list("nothing/") == case.store.list("q") == []
    for name in names:
        assert read_all(case, name) == name.encode()
    case.store.delete("a/b/d")
    assert [o.name for o in case.store.list("a/b/")] == ["a/b/c.sql.gz"]
    assert case.store.describe("a/b/d").endswith("host1/a/b/d")


INVALID = ["", "..", "a/../b", "/lead", "trail/", "a//b", "a/./b", ".hidden", "a/.hidden", "back\\slash", "n\0ul"]


@pytest.mark.parametrize("name", [*INVALID, "../escape", f"obj{TEMP_MARK}", f"a/b{TEMP_MARK}/c", "x" * 901])
def test_invalid_names_are_refused(case: StoreCase, name: str) -> None:
    with pytest.raises(StoreError):
        case.store.put(name, [b"x"])
    with pytest.raises(StoreError):
        case.store.put(name, [b"x"], if_absent=True)
    with pytest.raises(StoreError):
        case.store.open(name)
    with pytest.raises(StoreError):
        case.store.delete(name)
    assert case.store.list() == []
    assert case.leftovers() == []


@pytest.mark.parametrize("size", [5, BIG], ids=["small", "multipart"])
def test_put_if_absent_never_replaces(case: StoreCase, size: int) -> None:
    first, second = os.urandom(size), os.urandom(size)
    assert case.store.put("db/obj", chunked(first), if_absent=True) == size
    with pytest.raises(AlreadyExists) as info:
        case.store.put("db/obj", chunked(second), if_absent=True)
    assert "db/obj" in str(info.value) and info.value.hint
    assert read_all(case, "db/obj") == first
    assert [o.name for o in case.store.list()] == ["db/obj"]
    assert case.leftovers() == []
    assert case.store.leftovers() == []
    case.store.put("db/obj", [second])  # without if_absent it replaces
    assert read_all(case, "db/obj") == second


@pytest.mark.parametrize("fail_after", [3 * MiB, 8 * MiB], ids=["first-part", "multipart"])
@pytest.mark.parametrize("if_absent", [False, True])
def test_failed_put_of_a_nested_name_leaves_nothing(case: StoreCase, fail_after: int, if_absent: bool) -> None:
    def failing() -> Iterator[bytes]:
        yield from chunked(os.urandom(fail_after), MiB)
        raise Boom("producer died")

    with pytest.raises(Boom):
        case.store.put("deep/er/obj", failing(), if_absent=if_absent)
    assert case.store.list() == []
    assert case.leftovers() == []
    assert case.store.leftovers() == []
    case.store.put("deep/er/obj", [b"later"], if_absent=if_absent)  # nothing is in the way
    assert read_all(case, "deep/er/obj") == b"later"


def test_leftovers_of_an_empty_store(case: StoreCase) -> None:
    assert case.store.leftovers() == []


def test_a_killed_writer_leaves_a_leftover_that_can_be_removed(case: StoreCase) -> None:
    case.store.put("sub/done", [b"kept"])
    case.abandon("sub/obj")
    assert [o.name for o in case.store.list()] == ["sub/done"]
    [left] = case.store.leftovers()
    assert (left.name, left.size, left.in_use) == ("sub/obj", 100_000, False)
    assert left.started.tzinfo is not None
    assert case.leftovers() != []
    case.store.remove_leftover(left)
    assert case.store.leftovers() == []
    assert case.leftovers() == []
    case.store.remove_leftover(left)  # gone already
    assert read_all(case, "sub/done") == b"kept"


def test_describe_names_the_object(case: StoreCase) -> None:
    assert case.store.describe("obj.sql.gz").endswith("host1/obj.sql.gz")
