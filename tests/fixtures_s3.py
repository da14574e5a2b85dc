"""Pytest fixtures for a real S3 endpoint (moto_server on loopback); a conftest imports the ones it needs.

- ``s3_server``: the session's MotoServer (``.url`` is its endpoint).
- ``s3_env``: points boto3 at it for one test (monkeypatched AWS_* variables, ~/.aws ignored); returns the
  variables as a dict, for subprocesses that need them.
- ``s3_client``: a boto3 client for that endpoint, for setting up and inspecting what a store did.
- ``s3_bucket``: a fresh, empty bucket, emptied and removed afterwards.
- ``s3_store_url``: ``s3://<fresh bucket>/backups``; ``open_store(s3_store_url)`` works as is.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from s3server import AWS_ENV_CLEARED, MotoServer, aws_env


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def s3_env(s3_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in AWS_ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    env = aws_env(s3_server.url, tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def s3_client(s3_env: dict[str, str]) -> Any:
    return boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"], region_name=s3_env["AWS_DEFAULT_REGION"])


@pytest.fixture
def s3_bucket(s3_client: Any) -> Iterator[str]:
    bucket = f"dbkeeper-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    yield bucket
    for upload in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3_client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            s3_client.delete_object(Bucket=bucket, Key=obj["Key"])
    s3_client.delete_bucket(Bucket=bucket)


@pytest.fixture
def s3_store_url(s3_bucket: str) -> str:
    return f"s3://{s3_bucket}/backups"
