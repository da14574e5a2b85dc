"""Physical base backups through PostgreSQL's own programs: ``pg_basebackup`` to take one, ``pg_verifybackup`` and
``pg_combinebackup`` at restore.

``pg_basebackup -D - -Ft -X none`` writes one tar stream to stdout: the data directory, then ``backup_manifest``
as its last member (the client adds it), then the tar trailer. ``TarSplit`` parses only the 512-byte headers as
the bytes pass, hands every other byte on untouched as ``base.tar``, and keeps the manifest aside: no spooling,
memory bounded by the chunk size. With ``-X none`` the server's ``pg_backup_stop`` waits until the backup's WAL
has been archived; the caller still checks the archive itself. Standard output cannot carry a second
tablespace (pg_basebackup refuses), so ``server_facts`` lists them first and the backup is refused clearly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dbkeeper import proc
from dbkeeper.codec import read_chunks
from dbkeeper.engines.postgres.clients import Client, pick
from dbkeeper.engines.postgres.conn import PgConn
from dbkeeper.engines.postgres.psql import query
from dbkeeper.errors import CheckFailed, ToolError

BLOCK = 512
MANIFEST_MEMBER = "backup_manifest"
MAX_MANIFEST = 1 << 30  # a manifest is ~100 bytes per file: a gigabyte is far past any real cluster


@dataclass(frozen=True)
class ServerFacts:
    """What a base backup's place in the store and its checks depend on, read before it starts."""

    sysid: int
    version_num: int
    version: str
    wal_segment_size: int
    timeline: int
    tablespaces: tuple[str, ...]  # other than pg_default and pg_global
    summarize_wal: bool
    archive_mode: str

    @property
    def major(self) -> int:
        return self.version_num // 10000


def server_facts(conn: PgConn, pg_bin: str | None = None) -> ServerFacts:
    doing = f"reading the cluster facts of {conn.display()}"
    row = query(
        conn,
        "SELECT (SELECT system_identifier FROM pg_control_system()), current_setting('server_version_num'),"
        " current_setting('server_version'), current_setting('wal_segment_size'),"
        " (SELECT timeline_id FROM pg_control_checkpoint()),"
        " coalesce(current_setting('summarize_wal', true), 'off'), current_setting('archive_mode'),"
        " (SELECT coalesce(string_agg(spcname, ',' ORDER BY spcname), '') FROM pg_tablespace"
        "   WHERE spcname NOT IN ('pg_default', 'pg_global'))",
        pg_bin=pg_bin,
        doing=doing,
    )[0]
    return ServerFacts(
        sysid=int(row[0]),
        version_num=int(row[1]),
        version=row[2].split()[0],
        wal_segment_size=_size_setting(row[3]),
        timeline=int(row[4]),
        summarize_wal=row[5] == "on",
        archive_mode=row[6],
        tablespaces=tuple(t for t in row[7].split(",") if t),
    )


def _size_setting(text: str) -> int:
    """``wal_segment_size`` as ``current_setting`` shows it (``16MB``) in bytes."""
    units = {"kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(text[: -len(unit)]) * factor
    return int(text)


@dataclass(frozen=True)
class Member:
    """One ustar header, checked (see ``read_tar``)."""

    block: bytes  # the 512 bytes as they came
    name: str
    size: int
    kind: bytes  # b"0"/b"\0" regular file, b"5" directory, anything else: another kind
    mode: int

    @property
    def regular(self) -> bool:
        return self.kind in (b"0", b"\0")


def read_tar(chunks: Iterable[bytes], what: str) -> Iterator[Member | tuple[memoryview, int, bool] | None]:
    """Walk a ustar stream as it comes, holding nothing but a partial header: a ``Member`` for each header, then
    ``(piece, data, last)`` for each stretch of its content as the chunks cut it (``data``: how many of the
    piece's bytes are the member's data, the rest padding; ``last``: the member ends with it), and None after
    each input chunk (a point to hand on what was gathered). CheckFailed, naming ``what``, for a header whose
    checksum does not match, anything but zeros after the trailer, and a stream that ends before its trailer:
    a truncated tar never looks whole. The one header reader of the split and the unpack."""
    header = bytearray()
    remaining = 0  # bytes of the current member still to come, padding included
    data_left = 0  # of those, bytes of data
    ended = False
    for chunk in chunks:
        view = memoryview(chunk)
        i, n = 0, len(view)
        while i < n:
            if remaining:
                take = min(remaining, n - i)
                remaining -= take
                yield view[i : i + take], min(take, data_left), not remaining
                data_left = max(data_left - take, 0)
                i += take
                continue
            if ended:
                if any(view[i:]):
                    raise CheckFailed(f"{what} holds data after its end")
                break
            take = min(BLOCK - len(header), n - i)
            header += view[i : i + take]
            i += take
            if len(header) < BLOCK:
                break
            block = bytes(header)
            header.clear()
            if not any(block):
                ended = True
                continue
            member = _parse_header(block, what)
            remaining = (member.size + BLOCK - 1) // BLOCK * BLOCK
            data_left = member.size
            yield member
        yield None
    if remaining or header or not ended:
        raise CheckFailed(f"{what} ended early (no tar trailer)")


class TarSplit:
    """Splits pg_basebackup's tar stream into the data directory's tar and the ``backup_manifest`` member.

    ``split(chunks)`` yields the tar without the manifest member (a whole tar: the trailer is re-made); after it
    is exhausted, ``manifest`` holds the manifest's bytes and ``backup_label`` the label's. What ``read_tar``
    refuses, and a stream without a manifest, raise CheckFailed.
    """

    WHAT = "pg_basebackup's tar stream"

    def __init__(self) -> None:
        self.manifest = bytearray()
        self.backup_label = bytearray()
        self.members = 0

    def split(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        capture: bytearray | None = None  # where a copy of the current member's data goes
        divert = False  # True: the member is left out of the output (the manifest)
        out: list[bytes | memoryview] = []
        for event in read_tar(chunks, self.WHAT):
            if event is None:
                if out:
                    yield b"".join(out)
                    out = []
            elif isinstance(event, Member):
                self.members += 1
                divert = event.regular and event.name == MANIFEST_MEMBER
                label = event.regular and event.name == "backup_label"
                capture = self.manifest if divert else self.backup_label if label else None
                if not divert:
                    out.append(event.block)
            else:
                piece, data, _last = event
                if capture is not None and data and len(capture) < MAX_MANIFEST:
                    capture += piece[:data]
                if not divert:
                    out.append(piece)
        if not self.manifest:
            raise CheckFailed(f"{self.WHAT} holds no backup_manifest")
        yield bytes(2 * BLOCK)


def _parse_header(block: bytes, what: str) -> Member:
    """A ustar header's name, size, type and mode; CheckFailed when its checksum does not match."""
    stored = block[148:156].split(b"\0", 1)[0].strip()
    actual = sum(block[:148]) + 8 * 32 + sum(block[156:])
    try:
        ok = int(stored or b"-1", 8) == actual
    except ValueError:
        ok = False
    if not ok:
        raise CheckFailed(f"{what} holds a damaged header")
    name = block[0:100].split(b"\0", 1)[0]
    prefix = block[345:500].split(b"\0", 1)[0] if block[257:262] == b"ustar" else b""
    full = (prefix + b"/" + name if prefix else name).decode("utf-8", "surrogateescape")
    raw = block[124:136]
    try:  # octal, or base-256 (high bit set) for members of 8 GiB and more
        size = int.from_bytes(raw[1:], "big") if raw[0] & 0x80 else int(raw.split(b"\0", 1)[0].strip() or b"0", 8)
    except ValueError:
        raise CheckFailed(f"{what} holds a header with a malformed size") from None
    try:
        mode = int(block[100:108].split(b"\0", 1)[0].strip() or b"0", 8)
    except ValueError:
        mode = 0o600
    return Member(block, full, size, block[156:157], mode)


def basebackup_client(major: int, pg_bin: str | None = None) -> Client:
    return pick("pg_basebackup", major, pg_bin)


@contextmanager
def run(conn: PgConn, client: Client, *, label: str, incremental: Path | None = None) -> Iterator[Iterator[bytes]]:
    """pg_basebackup running; yields its tar stream (data directory, then ``backup_manifest``) as chunks, which
    raise ToolError quoting its stderr after the last one when it failed (so a failed backup never looks whole).
    Leaving the block kills a pg_basebackup still running (the consumer failed: the store went away)."""
    argv = [client.path, "-D", "-", "-Ft", "-X", "none", "-c", "fast", "--manifest-checksums=SHA256", "-w"]
    argv += ["-l", label]
    if incremental is not None:
        argv.append(f"--incremental={incremental}")
    with proc.Process(argv, env=conn.env()) as child:

        def chunks() -> Iterator[bytes]:
            yield from read_chunks(child.stdout)
            try:
                child.check()
            except ToolError as exc:
                raise ToolError(exc.message, _hint(exc.stderr), exc.stderr) from None

        yield chunks()


def _hint(stderr: str) -> str:
    text = stderr.lower()
    if "summariz" in text:
        return "an incremental backup needs summarize_wal = on (PostgreSQL 17) since before its parent was taken"
    if "replication" in text or "pg_hba" in text:
        return (
            "pg_basebackup connects for replication: the role needs REPLICATION (or superuser) and pg_hba.conf a"
            " 'replication' line for it; max_wal_senders must leave a free sender"
        )
    return "read pg_basebackup's message above; the server log says more"


@dataclass(frozen=True)
class WalRange:
    timeline: int
    start_lsn: str
    end_lsn: str


@dataclass(frozen=True)
class BackupManifest:
    """The facts dbkeeper takes from a ``backup_manifest`` (PostgreSQL's JSON; version 2 from 17 on)."""

    version: int
    system_identifier: int | None
    wal_ranges: tuple[WalRange, ...]
    files: int
    checksum: str

    @classmethod
    def parse(cls, data: bytes) -> BackupManifest:
        try:
            doc = json.loads(data)
            ranges = tuple(
                WalRange(int(r["Timeline"]), str(r["Start-LSN"]), str(r["End-LSN"])) for r in doc["WAL-Ranges"]
            )
            out = cls(
                version=int(doc["PostgreSQL-Backup-Manifest-Version"]),
                system_identifier=int(doc["System-Identifier"]) if "System-Identifier" in doc else None,
                wal_ranges=ranges,
                files=len(doc["Files"]),
                checksum=str(doc["Manifest-Checksum"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckFailed(f"the backup_manifest does not read as PostgreSQL writes it ({exc})") from None
        if not ranges:
            raise CheckFailed("the backup_manifest names no WAL range")
        return out


def verify(datadir: Path, client: Client, *, manifest: Path | None = None) -> str:
    """``pg_verifybackup -n`` on an unpacked data directory (its WAL comes from the archive at recovery, so only
    the files are checked against the manifest's SHA-256s); CheckFailed quoting it when anything differs."""
    argv = [client.path, "-n", "-q"]
    if manifest is not None:
        argv += ["-m", str(manifest)]
    try:
        return proc.run([*argv, str(datadir)], timeout=None)
    except ToolError as exc:
        raise CheckFailed(
            f"pg_verifybackup found the restored files do not match the backup's manifest: {exc.message}",
            "the base backup in the store is damaged; restore from another (--base-backup ID)",
        ) from None


def combine(dirs: list[Path], output: Path, client: Client) -> None:
    """``pg_combinebackup`` of unpacked backups, full first, into ``output`` (which must not exist)."""
    try:
        proc.run([client.path, "-o", str(output), *map(str, dirs)], timeout=None)
    except ToolError as exc:
        raise ToolError(
            f"pg_combinebackup could not combine the incremental backup with its parent: {exc.message}",
            "check that the parent base backup is intact (`dbkeeper list`) and restore it alone if needed",
            exc.stderr,
        ) from None


class TarUnpack:
    """Writes a base backup's tar (as TarSplit passed it on) into an empty directory, as it streams.

    The tar comes from the store, so it is untrusted: only directories and regular files are written, under names
    that stay inside the directory (no absolute path, no ``..``, no empty part); a symlink, device or any other
    member is refused (tablespaces are refused at backup time). Files are created ``O_EXCL | O_NOFOLLOW`` in
    directories this unpacker made itself, mode 0600 (0640 when the cluster allows group access), directories
    0700 (0750). CheckFailed when the stream is cut short.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = 0
        self.bytes = 0

    def run(self, chunks: Iterable[bytes]) -> None:
        fd = -1
        try:
            for event in read_tar(chunks, "the base backup's tar"):
                if event is None:
                    continue
                if isinstance(event, Member):
                    path = self._path(event.name)
                    if event.kind == b"5":
                        os.makedirs(path, mode=0o750 if event.mode & 0o050 else 0o700, exist_ok=True)
                    elif event.regular:
                        os.makedirs(path.parent, mode=0o700, exist_ok=True)
                        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                        fd = os.open(path, flags, 0o640 if event.mode & 0o040 else 0o600)
                        self.files += 1
                        self.bytes += event.size
                        if not event.size:
                            os.close(fd)
                            fd = -1
                    else:
                        raise CheckFailed(f"the base backup holds {event.name!r}, which is not a file or a directory")
                    continue
                piece, data, last = event
                if fd >= 0:
                    piece = piece[:data]
                    while piece:
                        piece = piece[os.write(fd, piece) :]
                    if last:
                        os.close(fd)
                        fd = -1
        finally:
            if fd >= 0:
                os.close(fd)

    def _path(self, name: str) -> Path:
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if not parts or name.startswith("/") or ".." in parts or any("\0" in p for p in parts):
            raise CheckFailed(f"the base backup holds a member named {name[:80]!r}, outside its directory")
        return self.root.joinpath(*parts)
