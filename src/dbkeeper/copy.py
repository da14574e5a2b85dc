"""Copy a complete backup from one store to others (``dbkeeper copy``, ``backup --copy-to``).

Works on any Store: the data streams from the source into the destination's atomic ``put``, hashed on the way.
The hash and size are compared with the manifest inside the chunk iterator, after the last chunk and before the
put can complete: a mismatch raises there, the put aborts and nothing becomes visible at the destination. Then
the ``.sha256`` sidecar and last the manifest are written, in the order a backup is made, so a copy stopped half
way is an incomplete backup at the destination, never a good-looking one.

- Only complete backups are copied: the manifest must be readable and name its file, and the sidecar must agree
  with it. Anything else is refused with CheckFailed before any destination is touched.
- A backup already complete at a destination with the same sha256 is left alone ("already there"); a different
  backup under the same name is refused rather than overwritten, and so is a broken one (a manifest that does not
  read: whoever wrote it, it is for a human to look at). An incomplete copy there (data without a manifest, as an
  interrupted copy leaves) is replaced.
- The set keeps its name (its source's directory included) and its manifest and sidecar are copied byte for byte.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dbkeeper import codec
from dbkeeper.errors import CheckFailed, DbkeeperError, NoSuchBackup, NotFound
from dbkeeper.progress import SILENT, Progress
from dbkeeper.repo import Repository, names
from dbkeeper.repo.catalog import signature_problem
from dbkeeper.repo.manifest import Manifest, ManifestError
from dbkeeper.streams import Tap


@dataclass(frozen=True)
class Source:
    """A complete backup as read from its store: the parsed manifest and both sidecars' exact bytes."""

    name: str
    manifest: Manifest
    manifest_bytes: bytes
    sha256_bytes: bytes
    signature_bytes: bytes | None = None  # the .json.sig of a signed set, copied byte for byte


@dataclass
class CopyOutcome:
    destination: str  # the store's URL
    location: str  # where the backup is there
    copied: bool = False  # False with no error: it was already there
    seconds: float = 0.0
    error: DbkeeperError | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "location": self.location,
            "ok": self.error is None,
            "status": "failed" if self.error else "copied" if self.copied else "already there",
            "seconds": round(self.seconds, 3),
            "error": self.error.message if self.error else None,
            "hint": self.error.hint if self.error else None,
        }


@dataclass
class CopyResult:
    backup: str
    source: str  # where it was read
    size_bytes: int
    sha256: str
    outcomes: list[CopyOutcome] = field(default_factory=list)

    @property
    def failures(self) -> list[CopyOutcome]:
        return [o for o in self.outcomes if o.error is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.failures,
            "backup": self.backup,
            "source": self.source,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "copies": [o.to_json() for o in self.outcomes],
        }


def copy_backup(
    source: Repository, name: str, destinations: Sequence[Repository], *, progress: Progress | None = None
) -> CopyResult:
    """Copy ``name`` to every destination; a failing destination is recorded and the others go on. ``progress``
    expects the backup's size once per destination and hears the bytes sent to all of them so far."""
    backup = read_source(source, name)
    result = CopyResult(name, source.describe(name), backup.manifest.size_bytes, backup.manifest.sha256)
    progress = progress or SILENT
    progress.expect(backup.manifest.size_bytes * len(destinations))
    for i, dest in enumerate(destinations):
        t0 = time.monotonic()
        outcome = CopyOutcome(dest.url, dest.describe(name))
        base = i * backup.manifest.size_bytes

        def sent(n: int, base: int = base) -> None:
            progress.update(base + n)

        try:
            outcome.copied = copy_one(source, backup, dest, sent)
        except DbkeeperError as exc:
            outcome.error = exc
        outcome.seconds = time.monotonic() - t0
        result.outcomes.append(outcome)
    return result


def read_source(repo: Repository, name: str) -> Source:
    """The backup's manifest and sidecar, checked to describe a complete backup; CheckFailed if they do not."""
    refuse = "only complete backups are copied: `dbkeeper list` shows them, `dbkeeper verify` says what is wrong"
    try:
        raw = repo.manifest_bytes(name)
    except NotFound:
        if not repo.exists(name):
            raise NoSuchBackup(f"no backup {name} in {repo.url}", "`dbkeeper list` shows the backups there") from None
        raise CheckFailed(f"{name} is incomplete (it has no manifest) and was not copied", refuse) from None
    try:
        doc = repo.read_manifest(name)
        side_raw = repo.sidecar_bytes(name)
        if names.parse_sha256_line(side_raw, name) != doc.sha256:
            raise ValueError("the .sha256 sidecar and the manifest disagree")
        signature = repo.signature_bytes(name)
        if repo.verify_key is not None:
            problem = signature_problem(repo.verify_key, raw, signature)
            if problem:
                raise ValueError(problem)
    except NotFound:
        raise CheckFailed(f"{name} is broken (its .sha256 sidecar is missing) and was not copied", refuse) from None
    except ValueError as exc:
        raise CheckFailed(f"{name} is broken ({exc}) and was not copied", refuse) from exc
    return Source(name, doc, raw, side_raw, signature)


def copy_one(
    source: Repository, backup: Source, dest: Repository, on_progress: Callable[[int], None] | None = None
) -> bool:
    """Copy one backup to one store: True if copied, False if it was already there complete. ``on_progress``
    hears the running total of bytes sent."""
    name, doc = backup.name, backup.manifest
    where = dest.describe(name)
    try:
        existing: Manifest | None = dest.read_manifest(name)
    except NotFound:
        existing = None
    except ManifestError as exc:
        raise DbkeeperError(
            f"{where} already holds a broken backup under that name ({exc}); it was left alone",
            "look at it (`dbkeeper list` shows why it is broken) and remove it by hand if it is not needed",
        ) from None
    if existing is not None and existing.sha256 != doc.sha256:
        raise DbkeeperError(
            f"{where} already holds a different backup under that name (sha256 differs)",
            "check that no two hosts write the same source id; remove that backup by hand if it is stale",
        )
    if existing is not None and _complete(dest, name, existing):
        # The same set, maybe copied before it was signed here: it gets the signature (the manifest is the same
        # bytes, sha256 and all, or the check above refused it). Nothing else is rewritten.
        if backup.signature_bytes is not None and dest.manifest_bytes(name) == backup.manifest_bytes:
            return dest.add_signature(name, backup.signature_bytes)
        return False
    with source.open(name) as f:
        dest.put_copy(
            name,
            Tap(on_progress, digest=False).tap(_checked(codec.read_chunks(f), backup, where)),
            backup.sha256_bytes,
            backup.manifest_bytes,
            replace=existing is None and dest.exists(name),
            signature=backup.signature_bytes,
        )
    return True


def _checked(chunks: Iterable[bytes], backup: Source, where: str) -> Iterator[bytes]:
    """Pass the chunks on, failing before the end if they are not the bytes the manifest describes."""
    doc = backup.manifest
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > doc.size_bytes:
            break
        digest.update(chunk)
        yield chunk
    if size != doc.size_bytes or digest.hexdigest() != doc.sha256:
        found = (
            "sha256 of the stored bytes differs from the manifest"
            if size == doc.size_bytes
            else f"{'more than ' if size > doc.size_bytes else ''}{size} bytes, the manifest says {doc.size_bytes}"
        )
        raise CheckFailed(
            f"{backup.name} does not match its manifest ({found}); nothing was written to {where}",
            f"run `dbkeeper verify` on {backup.name}; copy an older backup instead",
        )


def _complete(dest: Repository, name: str, doc: Manifest) -> bool:
    """Data of the manifest's size and a sidecar that agrees: what the catalog calls ok."""
    sizes = {o.name: o.size for o in dest.store.list(name)}
    if sizes.get(name) != doc.size_bytes:
        return False
    try:
        return dest.read_sidecar(name) == doc.sha256
    except (NotFound, ValueError):
        return False
