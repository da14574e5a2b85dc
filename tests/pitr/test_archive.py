"""The WAL archive over real stores (a directory and moto S3), with synthetic WAL files."""

from __future__ import annotations

import os
from pathlib import Path

import pyrage
import pytest

from dbkeeper.errors import CheckFailed
from dbkeeper.pitr import walfile
from dbkeeper.pitr.archive import Cluster, WalArchive, WalConflict, WalMissing
from dbkeeper.pitr.walfile import WalRefused
from dbkeeper.signing import generate, parse_verify_key
from fixtures_s3 import s3_bucket, s3_client, s3_env  # noqa: F401
from store_cases import StoreCase, make_case
from walgen import SEG, SYSID, history, segment, write

CLUSTER = Cluster(SYSID, 15)
AID = CLUSTER.archive_id


@pytest.fixture(params=["local", "s3"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> StoreCase:
    return make_case(request.param, request, tmp_path / "store")


@pytest.fixture
def wal_dir(tmp_path: Path) -> Path:
    d = tmp_path / "pg_wal"
    d.mkdir()
    return d


def test_pushed_segments_come_back_byte_for_byte(case: StoreCase, wal_dir: Path, tmp_path: Path) -> None:
    arch = WalArchive(case.store, "main")
    data = segment("000000010000000000000003")
    result = arch.push(Path(write(wal_dir, "000000010000000000000003", data)), CLUSTER)
    assert not result.duplicate
    assert result.object.startswith(f"pitr/main/{AID}/wal/0000000100000000/000000010000000000000003-")
    assert result.stored_bytes < len(data) // 10  # zstd
    dest = tmp_path / "RECOVERYXLOG"
    arch.fetch(AID, "000000010000000000000003", dest, CLUSTER)
    assert dest.read_bytes() == data
    info = arch.info(AID)
    assert info is not None and (info.sysid, info.major, info.seg_size) == (SYSID, 15, SEG)
    assert [a.archive_id for a in arch.ids()] == [AID]


def test_an_identical_push_succeeds_and_different_bytes_are_refused(case: StoreCase, wal_dir: Path) -> None:
    arch = WalArchive(case.store, "main")
    data = segment("000000010000000000000003")
    path = Path(write(wal_dir, "000000010000000000000003", data))
    first = arch.push(path, CLUSTER)
    again = arch.push(path, CLUSTER)  # PostgreSQL crashed before it recorded the first push
    assert again.duplicate and again.object == first.object
    write(wal_dir, "000000010000000000000003", segment("000000010000000000000003"))  # other random bytes
    with pytest.raises(WalConflict, match="already archived with other contents"):
        arch.push(path, CLUSTER)
    assert [o.object for o in arch.files(AID)] == [first.object]
    # The refusal is remembered in the store, for wal-verify and status on any host to report.
    [refusal] = arch.refusals(AID)
    assert refusal["file"] == "000000010000000000000003" and refusal["archived_sha256"] == first.object[-68:-4]


def test_a_refusal_is_told_once_per_refused_bytes_not_at_every_retry(case: StoreCase, wal_dir: Path) -> None:
    """archive_command retries a refused file every minute; the alert goes out the first time those bytes are
    refused under that name, and again for other bytes."""
    told: list[WalConflict] = []
    arch = WalArchive(case.store, "main", on_refusal=told.append)
    path = Path(write(wal_dir, "000000010000000000000003", segment("000000010000000000000003")))
    arch.push(path, CLUSTER)
    write(wal_dir, "000000010000000000000003", segment("000000010000000000000003"))
    for _ in range(3):
        with pytest.raises(WalConflict):
            arch.push(path, CLUSTER)
    assert len(told) == 1 and "already archived with other contents" in told[0].message
    write(wal_dir, "000000010000000000000003", segment("000000010000000000000003"))
    with pytest.raises(WalConflict):
        WalArchive(case.store, "main", on_refusal=told.append).push(path, CLUSTER)  # another host, other bytes
    assert len(told) == 2


def test_a_missing_file_is_missing_and_nothing_is_written(case: StoreCase, tmp_path: Path) -> None:
    arch = WalArchive(case.store, "main")
    dest = tmp_path / "RECOVERYXLOG"
    with pytest.raises(WalMissing):
        arch.fetch(AID, "00000002.history", dest, CLUSTER)
    with pytest.raises(WalMissing):
        arch.fetch(AID, "000000010000000000000009", dest, CLUSTER)
    assert (not dest.exists() and os.listdir(tmp_path) == ["store"]) or not dest.exists()


def test_a_damaged_object_is_an_error_not_a_missing_file(case: StoreCase, wal_dir: Path, tmp_path: Path) -> None:
    arch = WalArchive(case.store, "main")
    result = arch.push(Path(write(wal_dir, "000000010000000000000003", segment("000000010000000000000003"))), CLUSTER)
    import zstandard

    # Whoever can write the store replaces the object with other valid zstd: the name's hash catches it.
    case.plant(result.object, zstandard.ZstdCompressor().compress(segment("000000010000000000000003")))
    dest = tmp_path / "RECOVERYXLOG"
    with pytest.raises(CheckFailed, match="damaged"):
        arch.fetch(AID, "000000010000000000000003", dest, CLUSTER)
    case.plant(result.object, b"not zstd at all")
    with pytest.raises(CheckFailed, match="damaged"):
        arch.fetch(AID, "000000010000000000000003", dest, CLUSTER)
    assert not dest.exists()
    assert not [p for p in tmp_path.iterdir() if "dbkeeper-tmp" in p.name]


def test_two_contents_under_one_name_are_never_chosen_between(case: StoreCase, wal_dir: Path) -> None:
    # A store without conditional writes let two pushers race: fetch refuses rather than guess.
    a = WalArchive(case.store, "main")
    first = a.push(Path(write(wal_dir, "000000010000000000000003", segment("000000010000000000000003"))), CLUSTER)
    other = segment("000000010000000000000003")
    import hashlib

    import zstandard

    name = first.object.rsplit("-", 1)[0] + f"-{hashlib.sha256(other).hexdigest()}.zst"
    case.plant(name, zstandard.ZstdCompressor().compress(other))
    with pytest.raises(WalConflict, match="different contents"):
        a.find(AID, "000000010000000000000003")


def test_segments_of_another_cluster_or_name_are_refused(case: StoreCase, wal_dir: Path) -> None:
    arch = WalArchive(case.store, "main")
    with pytest.raises(WalRefused, match="system identifier"):
        arch.push(
            Path(write(wal_dir, "000000010000000000000003", segment("000000010000000000000003", sysid=42))), CLUSTER
        )
    with pytest.raises(WalRefused, match="not this segment's"):
        arch.push(Path(write(wal_dir, "000000010000000000000004", segment("000000010000000000000003"))), CLUSTER)
    assert arch.files(AID) == []


def test_history_and_backup_files_are_kept_and_served(case: StoreCase, wal_dir: Path, tmp_path: Path) -> None:
    arch = WalArchive(case.store, "main")
    with pytest.raises(WalRefused, match="no segment of this cluster yet"):
        arch.push(Path(write(wal_dir, "00000002.history", history(1, "0/3000060"))), CLUSTER)
    arch.push(Path(write(wal_dir, "000000010000000000000003", segment("000000010000000000000003"))), CLUSTER)
    arch.push(Path(write(wal_dir, "00000002.history", history(1, "0/3000060"))), CLUSTER)
    backup = b"START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\n"
    arch.push(Path(write(wal_dir, "000000010000000000000003.00000028.backup", backup)), CLUSTER)
    assert arch.history(AID) == {2: history(1, "0/3000060")}
    dest = tmp_path / "x"
    arch.fetch(AID, "000000010000000000000003.00000028.backup", dest, CLUSTER)
    assert dest.read_bytes() == backup
    kinds = [o.name.kind for o in arch.files(AID)]
    assert kinds == ["history", "segment", "backup"]


def test_missing_names_the_gaps_in_a_range(case: StoreCase, wal_dir: Path) -> None:
    arch = WalArchive(case.store, "main")
    for segno in (3, 4, 6):
        name = walfile.segment_name(1, segno, SEG)
        arch.push(Path(write(wal_dir, name, segment(name))), CLUSTER)
    assert arch.missing(AID, 1, 3, 7, SEG) == [walfile.segment_name(1, 5, SEG), walfile.segment_name(1, 7, SEG)]
    assert arch.missing(AID, 2, 3, 3, SEG) == [walfile.segment_name(2, 3, SEG)]


def test_encrypted_and_signed_wal(case: StoreCase, wal_dir: Path, tmp_path: Path) -> None:
    identity = pyrage.x25519.Identity.generate()
    signer = generate(tmp_path / "sign.key")
    verify = parse_verify_key(signer.public)
    writer = WalArchive(case.store, "main", recipients=[identity.to_public()], signer=signer)
    data = segment("000000010000000000000003")
    result = writer.push(Path(write(wal_dir, "000000010000000000000003", data)), CLUSTER)
    assert result.object.endswith(".zst.age")
    reader = WalArchive(case.store, "main", identities=[identity], verify_key=verify)
    dest = tmp_path / "RECOVERYXLOG"
    reader.fetch(AID, "000000010000000000000003", dest, CLUSTER)
    assert dest.read_bytes() == data
    # Without the identity: a clear error, never "missing".
    with pytest.raises(Exception, match="encrypted"):
        WalArchive(case.store, "main").fetch(AID, "000000010000000000000003", tmp_path / "y", CLUSTER)
    # A forger with the public recipient (age does not authenticate) writes a valid object without a signature.
    forged = segment("000000010000000000000004")
    unsigned = WalArchive(case.store, "main", recipients=[identity.to_public()])
    unsigned.push(Path(write(wal_dir, "000000010000000000000004", forged)), CLUSTER)
    with pytest.raises(CheckFailed, match="not signed"):
        reader.fetch(AID, "000000010000000000000004", tmp_path / "z", CLUSTER)
    # ... or copies a good signature beside it.
    obj4 = reader.find(AID, "000000010000000000000004").object
    case.plant(obj4 + ".sig", signer.sign(b"something else"))
    with pytest.raises(CheckFailed, match="bad signature"):
        reader.fetch(AID, "000000010000000000000004", tmp_path / "z", CLUSTER)
    assert not (tmp_path / "z").exists()
