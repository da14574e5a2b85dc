"""Verification: everything that can be checked about a backup without restoring it.

Size, both sidecars against the stored bytes, whole decryption and decompression, the dump's own header and
trailer, and the row counts found in the dump against the manifest's. Each check is named and reported as OK or
FAILED with what was found, like a drill's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dbkeeper import codec, crypto
from dbkeeper.engines import check_for
from dbkeeper.errors import CheckFailed, ContentRefused, DbkeeperError, EncryptionError, UsageError
from dbkeeper.progress import SILENT, Progress
from dbkeeper.repo import Repository
from dbkeeper.repo.manifest import Manifest, ManifestError
from dbkeeper.streams import Tap


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Report:
    backup: str
    location: str
    checks: list[Check] = field(default_factory=list)
    manifest: Manifest | None = None
    partial: str = ""  # set when some checks could not run (an encrypted backup checked without its key)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def first_problem(self) -> str:
        bad = next((c for c in self.checks if not c.ok), None)
        return f"{bad.name}: {bad.detail}" if bad else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "backup": self.backup,
            "location": self.location,
            "ok": self.ok,
            "partial": self.partial or None,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }


def read_manifest(repo: Repository, name: str) -> tuple[Manifest, str | None]:
    """The set's manifest and what is wrong with its signature (None: nothing, or no verify key); CheckFailed
    naming the set when the manifest does not fit the schema or this file."""
    try:
        return repo.read_signed_manifest(name)
    except ManifestError as exc:
        raise CheckFailed(f"{name}: {exc}") from exc


def check_stored(repo: Repository, name: str) -> Report:
    """The cheap checks: the manifest reads and describes this file, (with a verify key) it is signed by that key,
    and the sidecar agrees with it."""
    report = Report(name, repo.describe(name))
    try:
        doc, unsigned = read_manifest(repo, name)
    except DbkeeperError as exc:
        report.add("manifest", False, str(exc))
        return report
    report.manifest = doc
    report.add("manifest", True, "readable")
    if repo.verify_key is not None:
        report.add("signature", unsigned is None, unsigned or "signed by the verify key")
    try:
        side = repo.read_sidecar(name)
        report.add(
            "sidecar",
            side == doc.sha256,
            "matches the manifest" if side == doc.sha256 else "the .sha256 sidecar and the manifest disagree",
        )
    except (ValueError, DbkeeperError) as exc:
        report.add("sidecar", False, str(exc))
    return report


def decode(doc: Manifest, stored: Iterable[bytes], identities: list[Any] | None) -> Iterator[bytes]:
    """The dump inside a backup's stored bytes: decrypted if the manifest says so, then decompressed."""
    stream: Iterable[bytes] = stored
    if doc.encryption:
        stream = crypto.decrypt(stream, identities or [])
    return codec.decompress(doc.compression, stream)


class ContentCheck:
    """Checks a backup's bytes as they stream past: what ``verify`` reads for, and what ``restore`` checks in
    the same pass as it loads, instead of reading the backup twice.

    ``stream(raw)`` hashes the stored bytes, decrypts, decompresses and feeds the engine's checker, yielding the
    dump's bytes; a broken stream raises CheckFailed or EncryptionError from inside it. ``finish(report)``
    then adds the named checks.
    """

    def __init__(
        self,
        doc: Manifest,
        identities: list[Any] | None,
        progress: Progress | None = None,
        *,
        after: str | None = None,
    ) -> None:
        self.doc = doc
        self.identities = identities
        self.progress = progress or SILENT
        self.after = after  # the phase to announce once the last byte went past (a restore's indexes)
        self.stored = Tap(self.progress.update)
        self.checker = check_for(doc.engine, doc.dump_format)
        self.complete = False  # the whole stream went past

    def stream(self, raw: Iterable[bytes]) -> Iterator[bytes]:
        feed = self.checker.feed
        for chunk in decode(self.doc, self.stored.tap(raw), self.identities):
            feed(chunk)
            yield chunk
        self.checker.end()  # before the consumer sees the stream end (and a spooled archive goes to pg_restore)
        self.complete = True
        if self.after:
            self.progress.phase(self.after)

    def finish(self, report: Report) -> Report:
        try:
            counts, problems = self.checker.result()
        finally:
            self.checker.close()
        doc = self.doc
        add_stored_checks(report, doc, self.stored)
        report.add("decompress", True, f"{doc.compression} stream is whole")
        report.add("content", not problems, "; ".join(problems) if problems else self.checker.passed)
        if not problems:
            diff = _count_diff(doc.row_counts, counts)
            report.add("row counts", not diff, diff or f"{len(counts)} tables, {sum(counts.values())} rows as recorded")
        return report

    def close(self) -> None:
        """Let go of the checker (its spool, its child process) on any way out: an error, SIGINT, SIGTERM."""
        self.checker.close()

    def broken(self, report: Report, repo: Repository, failure: EncryptionError | CheckFailed) -> Report:
        """The stream broke off: hash the whole object for the checksum verdict, and name what broke."""
        self.checker.close()
        add_stored_checks(report, self.doc, hash_object(repo, report.backup))
        kind = "decrypt" if isinstance(failure, EncryptionError) else "decompress"
        report.add("content" if isinstance(failure, ContentRefused) else kind, False, str(failure))
        return report


def verify(
    repo: Repository,
    name: str,
    identities: list[Any] | None = None,
    *,
    without_key: bool = False,
    progress: Progress | None = None,
) -> Report:
    """Check one backup completely. Never raises for a damaged backup: the report says what is wrong.

    An encrypted backup needs an identity (UsageError without one), unless ``without_key``: then only what the
    stored bytes show is checked (manifest, sidecar, size, checksum) and ``partial`` says so. That is for hosts
    that hold only the public recipients, as a backup host should (prune, ``backup --prune``).
    """
    report = check_stored(repo, name)
    doc = report.manifest
    if doc is None:
        return report
    if doc.encryption and not identities:
        if not without_key:
            raise UsageError(f"{name} is encrypted", "pass --identity FILE (an age identity for one of its recipients)")
        add_stored_checks(report, doc, hash_object(repo, name))
        report.partial = "encrypted and no identity given: checked the stored bytes only, not their content"
        return report
    if progress is not None:
        progress.expect(doc.size_bytes)
    content = ContentCheck(doc, identities, progress)
    try:
        try:
            with repo.open(name) as f:
                for _ in content.stream(codec.read_chunks(f)):
                    pass
        except (EncryptionError, CheckFailed) as exc:
            return content.broken(report, repo, exc)
        return content.finish(report)
    finally:
        content.close()


def hash_object(repo: Repository, name: str) -> Tap:
    stored = Tap()
    with repo.open(name) as f:
        for _ in stored.tap(codec.read_chunks(f)):
            pass
    return stored


def add_stored_checks(report: Report, doc: Manifest, stored: Tap) -> None:
    size_ok = stored.size == doc.size_bytes and stored.size > 0
    report.add("size", size_ok, f"{stored.size} bytes" + ("" if size_ok else f", manifest says {doc.size_bytes}"))
    sum_ok = stored.hexdigest() == doc.sha256
    report.add(
        "checksum",
        sum_ok,
        "sha256 matches" if sum_ok else "sha256 of the stored bytes differs from the manifest",
    )


def _count_diff(expected: dict[str, int], found: dict[str, int]) -> str:
    bad = [
        f"{t}: {found.get(t, 'missing')} (manifest {expected.get(t, 'absent')})"
        for t in sorted(set(expected) | set(found))
        if expected.get(t) != found.get(t)
    ]
    if not bad:
        return ""
    return "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
