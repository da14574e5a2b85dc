"""Stores: where backups live. One small interface, one module per kind, one contract suite for all.

A store holds flat objects by name. ``put`` is atomic: until it returns, nothing is visible under the final
name; if it raises (or the process dies), nothing is. Each store maps its own failures onto the StoreError
tree (NotFound, PermissionDenied, NoSpace, Transient) so that callers and wrappers can act on the kind.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

TEMP_MARK = ".dbkeeper-tmp"


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int
    modified: datetime


class Store(Protocol):
    """A flat namespace of objects. ``url`` is how a user names it (``backups``, ``s3://bucket/prefix``)."""

    url: str

    def put(self, name: str, chunks: Iterable[bytes]) -> int:
        """Store the concatenated chunks under ``name`` atomically; return the byte count."""
        ...

    def open(self, name: str) -> BinaryIO:
        """A readable binary stream of the object; raises NotFound."""
        ...

    def list(self) -> list[ObjectInfo]:
        """Every complete object; temporary and in-flight objects are never listed."""
        ...

    def delete(self, name: str) -> None:
        """Remove the object; deleting a missing object is not an error."""
        ...

    def describe(self, name: str) -> str:
        """A human-readable location of the object (a path or a URL)."""
        ...


def open_store(
    url: str,
    *,
    endpoint_url: str | None = None,
    sse: str | None = None,
    sse_kms_key_id: str | None = None,
) -> Store:
    """The store a user named: ``s3://bucket/prefix`` or a directory path.

    The keyword options concern S3 only (endpoint, server-side encryption); a directory store ignores them.
    """
    if url.startswith("s3://"):
        from dbkeeper.storage.s3 import S3Store

        return S3Store.from_url(url, endpoint_url=endpoint_url, sse=sse, sse_kms_key_id=sse_kms_key_id)
    from dbkeeper.storage.local import LocalStore

    return LocalStore(url)
