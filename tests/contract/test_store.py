"""One suite that every Store runs (restic's backend/test/suite.go): the contract in storage/__init__.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from dbkeeper.errors import NotFound, StoreError
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


def test_list_names_direct_children_relative_to_the_root(case: StoreCase) -> None:
    case.store.put("a.sql.gz", [b"a"])
    case.plant("sub/nested.sql.gz", b"n")  # a "directory" below the root
    case.plant(".hidden", b"h")
    case.plant("../outside", b"o")  # next to the root
    case.plant("../host1-sibling", b"s")  # shares the root's name as a string prefix
    assert [o.name for o in case.store.list()] == ["a.sql.gz"]


@pytest.mark.parametrize("name", ["", "a/b", ".hidden", "../escape"])
def test_invalid_names_are_refused(case: StoreCase, name: str) -> None:
    with pytest.raises(StoreError):
        case.store.put(name, [b"x"])
    assert case.store.list() == []


def test_describe_names_the_object(case: StoreCase) -> None:
    assert case.store.describe("obj.sql.gz").endswith("host1/obj.sql.gz")
