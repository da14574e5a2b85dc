"""One backup: dump -> count rows -> compress -> encrypt -> hash -> store, streaming in bounded memory.

The dump is read on its own thread (rows are counted there as the bytes pass), compression, encryption and
hashing run on the caller's thread, and the store consumes the result. ISA-L, hashlib and pyrage release the
GIL on large buffers, so the stages overlap on two cores.

Commit order (DESIGN.md): the data file appears under its final name only after the dump tool exited 0 and the
dump's trailer was seen (both checked inside the stream, before the store renames), then the ``.sha256``
sidecar, then the manifest, whose presence marks the backup complete.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dbkeeper import codec, crypto, manifest
from dbkeeper.engines import Engine
from dbkeeper.errors import DbkeeperError, ToolError
from dbkeeper.manifest import Manifest
from dbkeeper.storage import Store
from dbkeeper.streams import Stalled, Tap, then, threaded


@dataclass(frozen=True)
class BackupOptions:
    compression: str = "gzip"
    level: int | None = None
    recipients: tuple[str, ...] = ()
    stall_timeout: float | None = 900.0  # the watchdog: a dump silent this long is stopped


Progress = Callable[[int, int], None]  # (raw bytes dumped so far, bytes stored so far)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def run_backup(
    engine: Engine,
    store: Store,
    options: BackupOptions,
    *,
    progress: Progress | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Manifest:
    info = engine.inspect()
    recipients = crypto.parse_recipients(options.recipients) if options.recipients else []
    ext = manifest.data_extension(info.kind, options.compression, bool(recipients))
    started, name = _free_name(store, info.database, ext, clock)
    t0 = time.monotonic()

    raw_size = 0
    stored = Tap()
    counts: dict[str, int] = {}

    def on_raw(n: int) -> None:
        nonlocal raw_size
        raw_size += n
        if progress:
            progress(raw_size, stored.size)

    # The stream allocates steadily; without this the collector keeps rescanning every imported module's objects.
    gc.freeze()
    with engine.dump() as dump:

        def finish() -> None:
            counts.update(dump.finish())

        raw = then(Tap(on_raw, digest=False).tap(_watched(dump.chunks(), info.database, options.stall_timeout)), finish)
        stream = codec.compress(options.compression, raw, options.level)
        if recipients:
            stream = crypto.encrypt(stream, recipients)
        size = store.put(name, stored.tap(stream))

    digest = stored.hexdigest()
    completed = clock()
    doc = Manifest(
        engine=info.engine,
        database=info.database,
        file=name,
        created_at=manifest.iso(started),
        completed_at=manifest.iso(completed),
        duration_s=round(time.monotonic() - t0, 3),
        size_bytes=size,
        sha256=digest,
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
    )
    try:
        store.put(name + manifest.SHA256_SUFFIX, [manifest.sha256_line(digest, name)])
        store.put(name + manifest.MANIFEST_SUFFIX, [doc.to_json()])
    except DbkeeperError:
        _forget(store, name)
        raise
    return doc


def _free_name(store: Store, database: str, ext: str, clock: Callable[[], datetime]) -> tuple[datetime, str]:
    """A start time whose name is not taken yet: names have one-second resolution, and a second backup of the
    same database within the same second must not replace the first (the per-source lock rules out overlap)."""
    taken = {o.name for o in store.list()}
    for _ in range(3):
        started = clock()
        name = manifest.backup_name(database, started, ext)
        if name not in taken and name + manifest.MANIFEST_SUFFIX not in taken:
            return started, name
        time.sleep(1.05 - (time.time() % 1.0))
    raise DbkeeperError(f"{name} already exists in {store.url}", "check the machine's clock")


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


def _forget(store: Store, name: str) -> None:
    """Remove a backup that could not be committed (best effort: what is left has no manifest and is ignored)."""
    for suffix in (manifest.MANIFEST_SUFFIX, manifest.SHA256_SUFFIX, ""):
        with contextlib.suppress(DbkeeperError):
            store.delete(name + suffix)
