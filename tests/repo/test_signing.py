"""Signatures in the repository layer, on a real directory store: keys, the commit order with a signature, what a
failed commit and a deletion leave, and what the catalog makes of signed, unsigned and badly signed sets."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from dbkeeper import signing
from dbkeeper.errors import StoreError, UsageError
from dbkeeper.pipeline import BackupOptions
from dbkeeper.repo import Repository, catalog, names
from dbkeeper.storage.local import LocalStore
from history import NOW, Template, at, plant, real_backup, small_app


class RecordingStore(LocalStore):
    """A real LocalStore that remembers its writes and deletions, and can fail the write of one suffix."""

    def __init__(self, path: Path, fail_suffix: str | None = None) -> None:
        super().__init__(path)
        self.puts: list[str] = []
        self.deleted: list[str] = []
        self.fail_suffix = fail_suffix

    def put(self, name: str, chunks: Iterable[bytes], *, if_absent: bool = False, size_hint: int | None = None) -> int:
        self.puts.append(name)
        if self.fail_suffix and name.endswith(self.fail_suffix):
            raise StoreError(f"no write of {name} (test)")
        return super().put(name, chunks, if_absent=if_absent, size_hint=size_hint)

    def delete(self, name: str) -> None:
        self.deleted.append(name)
        super().delete(name)


@pytest.fixture
def key(tmp_path: Path) -> signing.Signer:
    return signing.generate(tmp_path / "sign.key")


def test_keys_round_trip_and_are_never_overwritten(tmp_path: Path, key: signing.Signer) -> None:
    path = tmp_path / "sign.key"
    assert signing.load_signer(path).public == key.public
    verify_key = signing.parse_verify_key(key.public)
    sig = key.sign(b"manifest")
    assert verify_key.verifies(b"manifest", sig)
    assert not verify_key.verifies(b"manifest!", sig)
    assert not verify_key.verifies(b"manifest", sig[:-1])
    assert not signing.parse_verify_key(signing.generate(tmp_path / "other.key").public).verifies(b"manifest", sig)
    before = path.read_bytes()
    with pytest.raises(UsageError, match="already exists"):
        signing.generate(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "text",
    ["", "dbkeeper-ed25519:", "dbkeeper-ed25519:AAAA", "dbkeeper-ed25519:" + "!" * 44, "age1abc", "ssh-ed25519 AAAA"],
)
def test_malformed_verify_keys_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as info:
        signing.parse_verify_key(text)
    assert info.value.hint and "\n" not in info.value.message


def test_a_signed_commit_writes_data_sidecar_signature_then_manifest(tmp_path: Path, key: signing.Signer) -> None:
    store = RecordingStore(tmp_path / "backups")
    doc = real_backup(store, small_app(tmp_path / "app.db"), at("2026-11-27"), BackupOptions(signer=key)).manifest
    name = doc.name
    assert store.puts == [name, names.sidecar(name), names.signature(name), names.manifest(name)]
    raw = store.local_path(names.manifest(name)).read_bytes()
    sig = store.local_path(names.signature(name)).read_bytes()
    assert signing.parse_verify_key(key.public).verifies(raw, sig)
    repo = Repository(store, signing.parse_verify_key(key.public))
    [entry] = repo.scan(NOW).entries
    assert entry.good and entry.signed
    assert repo.read_signed_manifest(name) == (doc, None)
    repo.delete(name)
    assert store.deleted == [names.manifest(name), names.signature(name), names.sidecar(name), name]
    assert list(store.list()) == []


def test_a_failed_signed_commit_removes_its_signature_too(tmp_path: Path, key: signing.Signer) -> None:
    store = RecordingStore(tmp_path / "backups", fail_suffix=names.MANIFEST_SUFFIX)
    with pytest.raises(StoreError):
        real_backup(store, small_app(tmp_path / "app.db"), at("2026-11-27"), BackupOptions(signer=key))
    assert [p for p in store.puts if p.endswith(names.SIGNATURE_SUFFIX)]  # it was written, then removed
    assert list(store.list()) == []


@pytest.fixture
def template(tmp_path: Path) -> Template:
    return real_backup(LocalStore(tmp_path / "scratch"), small_app(tmp_path / "app.db"), at("2020-01-01"))


def test_the_catalog_with_and_without_a_verify_key(tmp_path: Path, template: Template, key: signing.Signer) -> None:
    store = LocalStore(tmp_path / "backups")
    signed = plant(store, template, at("2026-11-25"))
    store.put(names.signature(signed), [key.sign(store.local_path(names.manifest(signed)).read_bytes())])
    foreign = plant(store, template, at("2026-11-26"))
    other = signing.generate(tmp_path / "other.key")
    store.put(names.signature(foreign), [other.sign(store.local_path(names.manifest(foreign)).read_bytes())])
    unsigned = plant(store, template, at("2026-11-27"))
    # Without a verify key nothing changes: the newest is latest, a signature is only noted.
    plain = {e.name: e for e in Repository(store).scan(NOW).entries}
    assert all(e.good for e in plain.values()) and plain[signed].signed and not plain[unsigned].signed
    assert Repository(store).latest(NOW).name == unsigned
    repo = Repository(store, signing.parse_verify_key(key.public))
    found = {e.name: (e.status, e.problem) for e in repo.scan(NOW).entries}
    assert found == {
        signed: (catalog.OK, None),
        foreign: (catalog.BROKEN, "bad signature"),
        unsigned: (catalog.BROKEN, "unsigned"),
    }
    assert repo.latest(NOW).name == signed
    assert repo.read_signed_manifest(unsigned)[1] == "unsigned"
    assert repo.read_signed_manifest(foreign)[1] == "bad signature"


def test_a_lone_signature_is_one_incomplete_entry(tmp_path: Path, key: signing.Signer) -> None:
    store = LocalStore(tmp_path / "backups")
    name = names.new_name("app", "app", at("2026-11-27"), ".db.gz").name
    store.put(names.signature(name), [b"x" * 64])
    [entry] = Repository(store).scan(NOW).entries
    assert entry.status == catalog.INCOMPLETE and "signature" in str(entry.problem)
    store.put(names.sidecar(name), [b"0" * 64 + b"  " + names.basename(name).encode() + b"\n"])
    [entry] = Repository(store).scan(NOW).entries
    assert entry.status == catalog.INCOMPLETE
    # its name is taken: a new set of that second gets -2
    assert Repository(store).new_name("app", "app", at("2026-11-27"), ".db.gz").seq == 2
