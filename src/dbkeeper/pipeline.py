"""One backup: dump -> count rows -> compress -> encrypt -> hash -> store, streaming in bounded memory.

The dump is read on its own thread (rows are counted there as the bytes pass), compression, encryption and
hashing run on the caller's thread, and the store consumes the result. ISA-L, hashlib and pyrage release the
GIL on large buffers, so the stages overlap on two cores.

Commit order (repo.Repository.commit): the data file appears under its final name only after the dump tool exited 0
and the dump's trailer was seen (both checked inside the stream, before the store renames), then the ``.sha256``
sidecar, then the signature when signing, then the manifest, whose presence marks the backup complete. No write
replaces anything.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dbkeeper import codec, crypto
from dbkeeper.engines import Engine
from dbkeeper.errors import ToolError
from dbkeeper.progress import SILENT, Progress
from dbkeeper.repo import Repository, names
from dbkeeper.repo.manifest import Manifest, iso
from dbkeeper.streams import Stalled, Tap, then, threaded

if TYPE_CHECKING:
    from dbkeeper.signing import Signer


@dataclass(frozen=True)
class BackupOptions:
    compression: str = "gzip"
    level: int | None = None
    recipients: tuple[str, ...] = ()
    stall_timeout: float | None = 900.0  # the watchdog: a dump silent this long is stopped
    signer: Signer | None = None  # signs the manifest (a .json.sig beside it)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def run_backup(
    engine: Engine,
    repo: Repository,
    source_id: str,
    options: BackupOptions,
    *,
    progress: Progress | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Manifest:
    """Back up ``engine``'s database as a new set of ``source_id``; its manifest once committed. ``progress`` hears
    the database's size as the expected total (an estimate: a dump is rarely the size of the database), then the
    raw bytes dumped and the bytes stored so far."""
    progress = progress or SILENT
    info = engine.inspect()
    progress.expect(info.size_estimate)
    recipients = crypto.parse_recipients(options.recipients) if options.recipients else []
    ext = names.data_extension(info.kind, options.compression, bool(recipients))
    started = clock()
    name = repo.new_name(source_id, info.database, started, ext).name
    t0 = time.monotonic()

    raw_size = 0
    stored = Tap()
    counts: dict[str, int] = {}

    def on_raw(total: int) -> None:
        nonlocal raw_size
        raw_size = total
        progress.update(total, stored.size)

    def manifest(size: int) -> Manifest:
        return Manifest(
            engine=info.engine,
            source_id=source_id,
            database=info.database,
            file=names.basename(name),
            created_at=iso(started),
            completed_at=iso(clock()),
            duration_s=round(time.monotonic() - t0, 3),
            size_bytes=size,
            sha256=stored.hexdigest(),
            compression=options.compression,
            encryption=_encryption_doc(options.recipients) if recipients else None,
            dump_format=info.dump_format,
            server_version=info.server_version,
            dump_tool_version=info.dump_tool_version,
            server_encoding=info.server_encoding,
            source=dict(info.source),
            row_counts=counts,
            raw_size_bytes=raw_size,
            extra=dict(info.extra),
            selection=info.selection.to_json() if info.selection else None,
        )

    # The stream allocates steadily; without this the collector keeps rescanning every imported module's objects.
    gc.freeze()
    with engine.dump() as dump:

        def finish() -> None:
            counts.update(dump.finish())

        raw = then(Tap(on_raw, digest=False).tap(_watched(dump.chunks(), info.database, options.stall_timeout)), finish)
        stream = codec.compress(options.compression, raw, options.level)
        if recipients:
            stream = crypto.encrypt(stream, recipients)
        return repo.commit(name, stored.tap(stream), manifest, signer=options.signer)


def _watched(chunks: Iterator[bytes], database: str, stall_timeout: float | None) -> Iterator[bytes]:
    try:
        yield from threaded(chunks, stall_timeout=stall_timeout)
    except Stalled as exc:
        raise ToolError(
            f"the dump of {database} made no progress for {exc.seconds:g} s and was stopped",
            "look for a lock held on the source (pg_stat_activity, wait_event_type = 'Lock'), or raise --stall-timeout",
        ) from None


def _encryption_doc(recipients: tuple[str, ...]) -> dict[str, Any]:
    return {"format": "age", "recipients": list(recipients)}
