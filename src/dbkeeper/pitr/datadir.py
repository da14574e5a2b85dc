"""What a PostgreSQL data directory says to the WAL commands: which cluster it is, and what waits to be archived.

``cluster_of`` is on the fast path of ``wal-push`` and ``wal-fetch`` (dbkeeper/quick.py): this module imports
only ``os`` and ``struct`` at load time, and no dataclasses (whose import alone costs several milliseconds).

- ``pg_control`` starts with the system identifier (8 bytes, native order); ``PG_VERSION`` holds the major.
- ``pg_wal/archive_status/<file>.ready`` is PostgreSQL's queue for archive_command: it creates the file once the
  WAL file is complete, and renames it to ``.done`` when archive_command exited 0. dbkeeper only reads it.
"""

from __future__ import annotations

import os
import struct

TYPE_CHECKING = False  # typing itself is not loaded on the fast path
if TYPE_CHECKING:
    from dbkeeper.pitr.walfile import WalName


class Cluster:
    """What the data directory says about the cluster whose WAL is pushed or fetched (immutable)."""

    __slots__ = ("major", "sysid")
    sysid: int
    major: int

    def __init__(self, sysid: int, major: int) -> None:
        object.__setattr__(self, "sysid", sysid)
        object.__setattr__(self, "major", major)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Cluster is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cluster) and (self.sysid, self.major) == (other.sysid, other.major)

    def __hash__(self) -> int:
        return hash((self.sysid, self.major))

    def __repr__(self) -> str:
        return f"Cluster(sysid={self.sysid}, major={self.major})"

    @property
    def archive_id(self) -> str:
        return archive_id(self.sysid, self.major)


def archive_id(sysid: int, major: int) -> str:
    return f"{sysid}-{major}"


def cluster_of(datadir: str | os.PathLike[str]) -> Cluster | None:
    """The system identifier (``pg_control``'s first field) and major version of a data directory; None when
    ``datadir`` is not one."""
    try:
        with open(os.path.join(datadir, "global", "pg_control"), "rb") as f:
            control = f.read(8)
        with open(os.path.join(datadir, "PG_VERSION"), "rb") as f:
            version = f.read(16).strip()
    except OSError:
        return None
    if len(control) < 8 or not version.isdigit():
        return None
    return Cluster(struct.unpack("<Q", control)[0], int(version))


class Ready:
    """A WAL file PostgreSQL has finished and not yet seen archived."""

    __slots__ = ("name", "since", "size")

    def __init__(self, name: WalName, size: int, since: float) -> None:
        self.name = name
        self.size = size  # the WAL file's bytes (0 if it vanished meanwhile)
        self.since = since  # the .ready file's mtime: when PostgreSQL queued it (Unix time)


def ready(datadir: str | os.PathLike[str]) -> list[Ready]:
    """The ``.ready`` files of ``datadir`` in the order PostgreSQL archives them (history files first, then WAL
    order); empty when there is no such directory."""
    from dbkeeper.pitr import walfile

    wal = os.path.join(datadir, "pg_wal")
    out = []
    try:
        entries = list(os.scandir(os.path.join(wal, "archive_status")))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.endswith(".ready"):
            continue
        try:
            name = walfile.WalName.parse(entry.name[: -len(".ready")])
            since = entry.stat().st_mtime
        except (walfile.WalRefused, OSError):
            continue
        try:
            size = os.stat(os.path.join(wal, name.text)).st_size
        except OSError:
            size = 0
        out.append(Ready(name, size, since))
    return sorted(out, key=lambda r: r.name.order)
