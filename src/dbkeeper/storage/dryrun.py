"""A Store that reads but does not write (restic's dry-run backend, behind ``backup --dry-run``).

``open``, ``list``, ``leftovers`` and ``describe`` read the real store; ``put``, ``delete`` and
``remove_leftover`` change nothing and are recorded in ``planned``, in order, for the caller to show. Reads do
not see the recorded writes: a dry run reports what it would do to the store as it is.

``put`` still reads its chunks to the end (the producer runs, and the byte count it returns is real) and
refuses what the real store would refuse before writing: an invalid name, and with ``if_absent`` a name that
is taken.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from dbkeeper.errors import AlreadyExists
from dbkeeper.storage import Leftover, ObjectInfo, Store, check_name


@dataclass(frozen=True)
class Planned:
    """One write a dry run did not make: ``action`` is "put", "delete" or "remove leftover"; ``target`` what
    ``describe`` says of the object (for a leftover, its key); ``size`` the bytes a put would have stored."""

    action: str
    name: str
    target: str
    size: int | None = None


class DryRunStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.url = store.url
        self.planned: list[Planned] = []

    def put(self, name: str, chunks: Iterable[bytes], *, if_absent: bool = False, size_hint: int | None = None) -> int:
        check_name(name)
        if if_absent and any(o.name == name for o in self.store.list(name)):
            raise AlreadyExists(
                f"{self.store.describe(name)} already exists; it would not be replaced",
                "delete it first if it should be replaced, or store under another name",
            )
        size = sum(memoryview(chunk).nbytes for chunk in chunks)
        self.planned.append(Planned("put", name, self.store.describe(name), size))
        return size

    def open(self, name: str) -> BinaryIO:
        return self.store.open(name)

    def list(self, prefix: str = "", *, skip: tuple[str, ...] = ()) -> list[ObjectInfo]:
        return self.store.list(prefix, skip=skip)

    def exists(self) -> bool:
        return self.store.exists()

    def delete(self, name: str) -> None:
        self.planned.append(Planned("delete", name, self.store.describe(check_name(name))))

    def describe(self, name: str) -> str:
        return self.store.describe(name)

    def leftovers(self) -> builtins.list[Leftover]:
        return self.store.leftovers()

    def remove_leftover(self, leftover: Leftover) -> None:
        self.planned.append(Planned("remove leftover", leftover.name, leftover.key))
