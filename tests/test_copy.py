"""copy between real LocalStore directories: byte for byte, in commit order, and nothing at all when it is wrong."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from dbkeeper.copy import CopyResult, copy_backup
from dbkeeper.errors import CheckFailed, DbkeeperError, NotFound
from dbkeeper.repo import Repository
from dbkeeper.storage.local import LocalStore
from dbkeeper.verify import Report, verify
from helpers import make_sqlite_app
from history import NOW, Template, at, files, flip_byte, plant, real_backup, small_app, snapshot, triples


@pytest.fixture
def src(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "backups")


@pytest.fixture
def dest(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "offsite")


@pytest.fixture
def backup(src: LocalStore, tmp_path: Path) -> Template:
    return real_backup(src, small_app(tmp_path / "app.db"), at("2026-11-27"))


class RecordingStore(LocalStore):
    """A real LocalStore that remembers the order of completed puts (observation only)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.puts: list[str] = []

    def put(self, name: str, chunks: Iterable[bytes], *, if_absent: bool = False, size_hint: int | None = None) -> int:
        size = super().put(name, chunks, if_absent=if_absent, size_hint=size_hint)
        self.puts.append(name)
        return size


def test_copy_is_byte_for_byte_in_commit_order_and_verifies(src: LocalStore, backup: Template, tmp_path: Path) -> None:
    name = backup.manifest.name
    dest = RecordingStore(tmp_path / "offsite")
    result = copy_in(src, name, [dest])
    assert not result.failures and result.outcomes[0].copied
    assert dest.puts == [name, name + ".sha256", name + ".json"]
    for f in triples(name):
        assert (dest.root / f).read_bytes() == src.local_path(f).read_bytes()
    assert oct(dest.root.stat().st_mode & 0o777) == "0o700"
    assert verify_in(dest, name).ok
    assert [e.status for e in Repository(dest).scan(NOW).entries] == ["ok"]


def test_a_complete_copy_is_left_alone(src: LocalStore, dest: LocalStore, backup: Template) -> None:
    name = backup.manifest.name
    copy_in(src, name, [dest])
    before = snapshot(dest)
    again = copy_in(src, name, [dest])
    assert again.outcomes[0].error is None and not again.outcomes[0].copied
    assert snapshot(dest) == before


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "grown"])
def test_bytes_that_do_not_match_the_manifest_leave_nothing_at_the_destination(
    src: LocalStore, dest: LocalStore, backup: Template, damage: str
) -> None:
    name = backup.manifest.name
    data = src.local_path(name)
    if damage == "flipped byte":
        flip_byte(data)
    elif damage == "truncated":
        data.write_bytes(data.read_bytes()[:-1])
    else:
        data.write_bytes(data.read_bytes() + b"\0")
    result = copy_in(src, name, [dest])
    error = result.outcomes[0].error
    assert isinstance(error, CheckFailed) and "does not match its manifest" in error.message
    assert "nothing was written" in error.message
    assert files(dest) == []  # not the data, not a sidecar, not even a temporary file


def test_incomplete_and_broken_backups_are_refused_before_any_destination_is_touched(
    src: LocalStore, dest: LocalStore, backup: Template
) -> None:
    incomplete = plant(src, backup, at("2026-11-26"))
    src.delete(incomplete + ".json")
    no_sidecar = plant(src, backup, at("2026-11-25"))
    src.delete(no_sidecar + ".sha256")
    disagree = plant(src, backup, at("2026-11-24"))
    src.put(disagree + ".sha256", [f"{'0' * 64}  {disagree.split('/')[-1]}\n".encode()])
    bad_manifest = plant(src, backup, at("2026-11-23"))
    src.put(bad_manifest + ".json", [b"{not json"])
    for name, why in [
        (incomplete, "incomplete"),
        (no_sidecar, "sidecar is missing"),
        (disagree, "disagree"),
        (bad_manifest, "not valid JSON"),
    ]:
        with pytest.raises(CheckFailed, match=why):
            copy_in(src, name, [dest])
    assert not dest.root.exists()


def test_a_missing_backup_is_not_found(src: LocalStore, dest: LocalStore, backup: Template) -> None:
    with pytest.raises(NotFound, match=r"no backup app_20200101_000000\.db\.gz"):
        copy_in(src, "app_20200101_000000.db.gz", [dest])


def test_a_different_backup_under_the_same_name_is_not_overwritten(
    src: LocalStore, dest: LocalStore, backup: Template, tmp_path: Path
) -> None:
    name = backup.manifest.name
    (tmp_path / "other").mkdir()
    other_app = make_sqlite_app(tmp_path / "other" / "app.db", users=31, sessions=20)
    other = real_backup(LocalStore(tmp_path / "elsewhere"), other_app, at("2026-11-27"))
    assert other.manifest.name == name and other.manifest.sha256 != backup.manifest.sha256
    copy_in(LocalStore(tmp_path / "elsewhere"), name, [dest])
    before = snapshot(dest)
    result = copy_in(src, name, [dest])
    error = result.outcomes[0].error
    assert error is not None and "different backup" in error.message
    assert snapshot(dest) == before


def test_an_incomplete_copy_at_the_destination_is_replaced(src: LocalStore, dest: LocalStore, backup: Template) -> None:
    name = backup.manifest.name
    dest.put(name, [b"the first half of an interrupted copy"])
    result = copy_in(src, name, [dest])
    assert result.outcomes[0].copied
    assert verify_in(dest, name).ok


def test_a_failing_destination_does_not_stop_the_others(
    src: LocalStore, dest: LocalStore, backup: Template, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where a store should be")
    result = copy_in(src, backup.manifest.name, [LocalStore(blocked), dest])
    assert isinstance(result.outcomes[0].error, DbkeeperError)
    assert result.outcomes[1].copied and verify_in(dest, backup.manifest.name).ok
    assert result.to_json()["ok"] is False
    assert [c["status"] for c in result.to_json()["copies"]] == ["failed", "copied"]


def test_encrypted_backups_are_copied_without_a_key(
    src: LocalStore, dest: LocalStore, tmp_path: Path, age_key: tuple[Path, str]
) -> None:
    from dbkeeper.crypto import load_identities
    from dbkeeper.pipeline import BackupOptions

    key, recipient = age_key
    enc = real_backup(src, small_app(tmp_path / "app.db"), at("2026-11-27"), BackupOptions(recipients=(recipient,)))
    assert enc.manifest.name.endswith(".db.gz.age")
    copy_in(src, enc.manifest.name, [dest])
    assert verify_in(dest, enc.manifest.name, load_identities(key)).ok


def copy_in(src: LocalStore, name: str, dests: list[LocalStore]) -> CopyResult:
    return copy_backup(Repository(src), name, [Repository(d) for d in dests])


def verify_in(store: LocalStore, name: str, *args: object, **kw: object) -> Report:
    return verify(Repository(store), name, *args, **kw)  # type: ignore[arg-type]
