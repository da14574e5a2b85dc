"""The issue's whole off-host story against a real S3 endpoint on loopback (moto_server): a backup goes to S3
with server-side and client-side (age) encryption, lists, verifies, restores and prunes from there."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import backup_files, cli, cli_json, make_sqlite_app
from pg import Cluster, PgDb


def _objects(s3_client: Any, bucket: str) -> dict[str, dict[str, Any]]:
    listing = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3_client.head_object(Bucket=bucket, Key=o["Key"]) for o in listing}


def test_encrypted_backup_to_s3_lists_verifies_restores_and_prunes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    s3_store_url: str,
    s3_bucket: str,
    s3_client: Any,
    age_key: tuple[Path, str],
) -> None:
    monkeypatch.chdir(tmp_path)
    make_sqlite_app(tmp_path / "app.db")
    key_file, recipient = age_key
    for _ in range(2):
        code, doc = cli_json(
            capsys, "backup", "sqlite:///app.db", "--store", s3_store_url, "--sse", "AES256", "--encrypt-to", recipient
        )
        assert code == 0, doc
    objects = _objects(s3_client, s3_bucket)
    assert len(objects) == 6
    assert all(head["ServerSideEncryption"] == "AES256" for head in objects.values())
    prefix = s3_store_url.removeprefix(f"s3://{s3_bucket}/")
    data_key = f"{prefix}/{doc['backups'][0]['name']}"  # the newer of two backups made within one second or two
    assert data_key in objects

    # The stored object is plain age: the stock tool decrypts it, and gunzip gives the SQLite file.
    encrypted = s3_client.get_object(Bucket=s3_bucket, Key=data_key)["Body"].read()
    plain = subprocess.run(["age", "-d", "-i", str(key_file)], input=encrypted, capture_output=True, check=True).stdout
    assert subprocess.run(["gzip", "-dc"], input=plain, capture_output=True, check=True).stdout.startswith(b"SQLite")

    code, listing = cli_json(capsys, "list", "--store", s3_store_url)
    assert code == 0 and [b["status"] for b in listing["backups"]] == ["ok", "ok"]
    assert all(b["encrypted"] for b in listing["backups"])

    code, _, err = cli(capsys, "verify", "latest", "--store", s3_store_url)
    assert code == 2 and "--identity" in err
    code, report = cli_json(capsys, "verify", "latest", "--store", s3_store_url, "--identity", str(key_file))
    assert code == 0 and report["ok"]

    code, result = cli_json(
        capsys, "restore", f"s3://{s3_bucket}/{data_key}", "sqlite:///restored.db", "--identity", str(key_file)
    )
    assert code == 0 and result["rows"] == 5500

    code, pruned = cli_json(capsys, "prune", "--store", s3_store_url, "--keep-last", "1", "--identity", str(key_file))
    assert code == 0, pruned
    remaining = _objects(s3_client, s3_bucket)
    assert sorted(remaining) == sorted([data_key, data_key + ".sha256", data_key + ".json"])


def test_postgres_backup_copied_off_host_with_kms(
    pgdb: PgDb,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    s3_store_url: str,
    s3_bucket: str,
    s3_client: Any,
    s3_env: dict[str, str],
    pg15: Cluster,
) -> None:
    import boto3

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PGPASSWORD", pg15.env()["PGPASSWORD"])
    cluster, name = pgdb
    cluster.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g", db=name)
    kms = boto3.client("kms", endpoint_url=s3_env["AWS_ENDPOINT_URL"], region_name=s3_env["AWS_DEFAULT_REGION"])
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    code, doc = cli_json(capsys, "backup", pgdb.url, "--copy-to", s3_store_url, "--sse-kms-key-id", key_id)
    assert code == 0, doc
    heads = _objects(s3_client, s3_bucket)
    assert len(heads) == 3
    assert {h["ServerSideEncryption"] for h in heads.values()} == {"aws:kms"}
    local = backup_files(tmp_path / "backups")
    prefix = s3_store_url.removeprefix(f"s3://{s3_bucket}/")
    assert sorted(k.removeprefix(f"{prefix}/") for k in heads) == local
    target = f"{name}_from_s3"
    code, result = cli_json(capsys, "restore", "latest", cluster.url(target), "--store", s3_store_url)
    assert code == 0 and result["rows"] == 5000
    cluster.drop_db(target)
