"""Stores: where backups live. One small interface, one module per kind, one contract suite for all.

A store holds objects by name. Names are relative paths with ``/`` between parts (``casino-eu/casino_….sql.gz``);
no part is empty, ``.`` or ``..``, or starts with a dot (those are the store's own temporary names). ``put`` is
atomic: until it returns, nothing is visible under the final name; if it raises (or the process dies), nothing
is. With ``if_absent`` it never replaces an object: a name that exists raises AlreadyExists. Each store maps its
own failures onto the StoreError tree (NotFound, AlreadyExists, PermissionDenied, NoSpace, Transient) so that
callers and wrappers (retry, dry-run) can act on the kind.

What an interrupted ``put`` can leave (a temporary file after SIGKILL, an unfinished multipart upload when the
abort could not reach the endpoint) is invisible to ``list`` and reported by ``leftovers``.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

from dbkeeper.errors import StoreError, UsageError

TEMP_MARK = ".dbkeeper-tmp"
S3_MODULES = ("boto3", "botocore", "s3transfer")  # the [s3] extra: only an s3:// store needs them
MAX_NAME = 900  # bytes: S3 keys hold 1024, and the store's own prefix needs room


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class Leftover:
    """Something an interrupted write left behind: never an object, never listed, removable by ``cleanup``.

    ``key`` is what the store needs to remove it (a path, or an S3 key and upload id); ``in_use`` is True when
    the store can tell that a running write still owns it (a local temporary file whose writer holds its lock).
    """

    kind: str  # "temporary file" | "unfinished upload"
    name: str  # the object name it was meant to become, where the store can tell; else its own name
    key: str
    size: int
    started: datetime
    in_use: bool = False


class Store(Protocol):
    """Named objects. ``url`` is how a user names the store (``backups``, ``s3://bucket/prefix``)."""

    url: str

    def put(self, name: str, chunks: Iterable[bytes], *, if_absent: bool = False, size_hint: int | None = None) -> int:
        """Store the concatenated chunks under ``name`` atomically; return the byte count.

        ``if_absent``: fail with AlreadyExists instead of replacing an existing object (local: ``link()``;
        S3: a conditional write ``If-None-Match: *``, else a check before the write). ``size_hint``: roughly
        how many bytes will come, for stores that plan their writes (S3 part sizes); others ignore it.
        """
        ...

    def open(self, name: str) -> BinaryIO:
        """A readable binary stream of the object; raises NotFound."""
        ...

    def list(self, prefix: str = "", *, skip: tuple[str, ...] = ()) -> list[ObjectInfo]:
        """Every complete object whose name starts with ``prefix``, at any depth, sorted by name; temporary and
        in-flight objects are never listed. A store that does not exist yet lists as empty.

        ``skip``: directories directly below ``prefix`` (``prefix + "pitr/"``) whose objects are left out without
        being read: a WAL archive's hundreds of thousands of objects cost a logical backup listing nothing."""
        ...

    def exists(self) -> bool:
        """Whether the store itself is there (its directory, its bucket): commands that only read (``list``,
        ``prune``, ``status``) refuse a missing one rather than report it as empty. An empty store exists."""
        ...

    def delete(self, name: str) -> None:
        """Remove the object; deleting a missing object is not an error."""
        ...

    def describe(self, name: str) -> str:
        """A human-readable location of the object (a path or a URL)."""
        ...

    def leftovers(self) -> builtins.list[Leftover]:
        """What interrupted writes left behind (see Leftover)."""
        ...

    def remove_leftover(self, leftover: Leftover) -> None:
        """Remove one leftover that ``leftovers`` returned; gone already is not an error."""
        ...


def check_name(name: str) -> str:
    """``name`` if it is a valid object name (see the module doc), else StoreError saying why."""
    if not name or len(name.encode("utf-8", "surrogateescape")) > MAX_NAME:
        raise StoreError(f"invalid object name {name!r}: empty or longer than {MAX_NAME} bytes")
    bad = next((c for c in name if c in "\\\0\r\n" or ord(c) < 32), None)
    if bad is not None:
        raise StoreError(f"invalid object name {name!r}: it holds {bad!r}")
    for part in name.split("/"):
        if not part or part.startswith(".") or TEMP_MARK in part:
            raise StoreError(f"invalid object name {name!r}: empty, dot or temporary path part {part!r}")
    return name


def is_valid_name(name: str) -> bool:
    """Whether ``name`` could be an object's (what a listing shows; see ``check_name``)."""
    try:
        check_name(name)
    except StoreError:
        return False
    return True


def open_store(
    url: str,
    *,
    endpoint_url: str | None = None,
    sse: str | None = None,
    sse_kms_key_id: str | None = None,
    region: str | None = None,
) -> Store:
    """The store a user named: ``s3://bucket/prefix`` or a directory path.

    The keyword options concern S3 only (endpoint, server-side encryption, region); a directory store ignores
    them. An S3 store comes wrapped in RetryingStore: throttling and dropped connections are tried again (a local
    disk has no Transient failures to retry).
    """
    if url.startswith("s3://"):
        try:
            from dbkeeper.storage.s3 import S3Store
        except ModuleNotFoundError as exc:
            if (exc.name or "").partition(".")[0] not in S3_MODULES:
                raise
            raise UsageError(
                f"{url}: s3:// stores need boto3, which is not installed ({exc.name} is missing)",
                "install the s3 extra: pip install 'dbkeeper[s3]' (pipx: pipx install --force 'dbkeeper[s3]')",
            ) from None

        return RetryingStore(
            S3Store.from_url(url, endpoint_url=endpoint_url, sse=sse, sse_kms_key_id=sse_kms_key_id, region=region)
        )
    from dbkeeper.storage.local import LocalStore

    return LocalStore(url)


# The wrappers import this module's names, so they come last.
from dbkeeper.storage.dryrun import DryRunStore, Planned  # noqa: E402
from dbkeeper.storage.retry import RetryingStore  # noqa: E402

__all__ = [
    "MAX_NAME",
    "TEMP_MARK",
    "DryRunStore",
    "Leftover",
    "ObjectInfo",
    "Planned",
    "RetryingStore",
    "Store",
    "check_name",
    "open_store",
]
