"""Restore: verify, load into a hidden temporary, check row counts, then swap into place.

The backup is verified completely before anything is created on the target. The load runs into a temporary
(a database with a private name, or a file beside the target), the stored bytes are hashed again on the way
(they must be the bytes that were verified), the row counts are compared with the manifest, and only then is
the temporary renamed over the target. Any failure removes the temporary and leaves the target as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from dbkeeper import codec, crypto
from dbkeeper.engines import RestoreOptions, engine_for
from dbkeeper.errors import CheckFailed, RestoreError, UsageError
from dbkeeper.storage import Store
from dbkeeper.streams import Tap
from dbkeeper.verify import Report, verify


@dataclass
class RestoreResult:
    backup: str
    target: str
    seconds: float
    row_counts: dict[str, int]
    replaced: bool
    verify: Report

    def to_json(self) -> dict[str, Any]:
        return {
            "backup": self.backup,
            "target": self.target,
            "seconds": round(self.seconds, 3),
            "replaced": self.replaced,
            "tables": len(self.row_counts),
            "rows": sum(self.row_counts.values()),
            "verify": self.verify.to_json(),
        }


def run_restore(
    store: Store,
    name: str,
    target_url: str,
    options: RestoreOptions,
    *,
    pg_bin: str | None = None,
    identities: list[Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RestoreResult:
    t0 = time.monotonic()
    report = verify(store, name, identities)
    if not report.ok:
        first = next(c for c in report.checks if not c.ok)
        wrong_key = first.name == "decrypt" and first.detail.startswith(crypto.WRONG_KEY)
        raise CheckFailed(
            f"{name} failed verification ({report.first_problem()}); nothing was restored",
            crypto.IDENTITY_HINT if wrong_key else "restore an older backup: `dbkeeper list` shows them",
        )
    doc = report.manifest
    assert doc is not None
    engine = engine_for(target_url, pg_bin=pg_bin)
    if engine.name != doc.engine:
        raise UsageError(f"{name} is a {doc.engine} backup and cannot be restored into a {engine.name} target")
    target = engine.restore_target({"server_encoding": doc.server_encoding, "extra": doc.extra}, options)
    existed = bool(getattr(target, "existed", False))
    try:
        stored = Tap(progress)
        with store.open(name) as f:
            stream: Iterator[bytes] = stored.tap(codec.read_chunks(f))
            if doc.encryption:
                stream = crypto.decrypt(stream, identities or [])
            target.load(codec.decompress(doc.compression, stream))
        if stored.hexdigest() != doc.sha256:
            raise RestoreError(f"{name} changed while it was being restored; the target was left as it was")
        counts = target.row_counts(doc.row_counts)
        bad = {t: (n, counts.get(t)) for t, n in doc.row_counts.items() if counts.get(t) != n}
        if bad:
            table, (want, got) = next(iter(sorted(bad.items())))
            raise RestoreError(
                f"row counts differ from the manifest in {len(bad)} table(s), e.g. {table}: {got} restored,"
                f" {want} backed up; the target was left as it was",
                "run `dbkeeper verify` on the backup and check the server log of the target",
            )
        target.commit()
    except BaseException:
        target.discard()
        raise
    return RestoreResult(name, target.description, time.monotonic() - t0, counts, existed, report)
