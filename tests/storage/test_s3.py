"""What only the S3 store does: encryption, part layout, endpoints and credentials, failure mapping, memory.

The shared behaviour (atomic put, list, delete, NotFound) is in tests/contract/test_store.py.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, EndpointConnectionError

from dbkeeper.errors import AlreadyExists, NotFound, PermissionDenied, StoreError, Transient, UsageError
from dbkeeper.storage import TEMP_MARK, Leftover, RetryingStore, open_store
from dbkeeper.storage.local import LocalStore
from dbkeeper.storage.s3 import (
    DEFAULT_PART_SIZE,
    MIN_PART_SIZE,
    S3Store,
    base_part_size,
    map_error,
    part_size_for,
)
from s3server import AWS_ENV_CLEARED, REGION, MotoServer, aws_env, free_port

MiB = 1024 * 1024
BIG = 11 * MiB + 1


def zeros(total: int, chunk: int = MiB) -> Iterator[bytes]:
    block = bytes(chunk)
    for _ in range(total // chunk):
        yield block
    if total % chunk:
        yield bytes(total % chunk)


def one_line(err: StoreError) -> bool:
    return "\n" not in str(err) and "\n" not in (err.hint or "")


@pytest.mark.parametrize("size", [10, BIG], ids=["put-object", "multipart"])
def test_sse_aes256_is_set_on_every_object(s3_bucket: str, s3_client: Any, size: int) -> None:
    store = S3Store.from_url(f"s3://{s3_bucket}/p", sse="AES256", part_size=MIN_PART_SIZE)
    store.put("obj", zeros(size))
    assert s3_client.head_object(Bucket=s3_bucket, Key="p/obj")["ServerSideEncryption"] == "AES256"


@pytest.mark.parametrize("size", [10, BIG], ids=["put-object", "multipart"])
def test_sse_kms_uses_the_given_key(s3_env: dict[str, str], s3_bucket: str, s3_client: Any, size: int) -> None:
    key_id = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    opened = open_store(f"s3://{s3_bucket}/p", sse="aws:kms", sse_kms_key_id=key_id)
    assert isinstance(opened, RetryingStore) and isinstance(opened.store, S3Store)  # S3 comes with retries
    store = opened.store
    store.part_size = MIN_PART_SIZE
    store.put("obj", zeros(size))
    head = s3_client.head_object(Bucket=s3_bucket, Key="p/obj")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(key_id)


def test_no_sse_unless_asked(s3_bucket: str, s3_client: Any) -> None:
    S3Store.from_url(f"s3://{s3_bucket}/p").put("obj", [b"x"])
    assert "ServerSideEncryption" not in s3_client.head_object(Bucket=s3_bucket, Key="p/obj")


@pytest.mark.parametrize(
    ("sse", "key_id"), [("aes256", None), ("AES256", "key"), (None, "key"), ("aws:kms:dsse", None)]
)
def test_bad_sse_options_are_usage_errors(sse: str | None, key_id: str | None) -> None:
    with pytest.raises(UsageError):
        S3Store(object(), "bucket", sse=sse, sse_kms_key_id=key_id)


def test_multipart_parts_are_equal_sized(s3_bucket: str, s3_client: Any) -> None:
    store = S3Store.from_url(f"s3://{s3_bucket}", part_size=MIN_PART_SIZE)
    assert store.put("obj", zeros(BIG, 3 * MiB + 5)) == BIG
    sizes = [s3_client.head_object(Bucket=s3_bucket, Key="obj", PartNumber=n)["ContentLength"] for n in (1, 2, 3)]
    assert sizes == [MIN_PART_SIZE, MIN_PART_SIZE, BIG - 2 * MIN_PART_SIZE]
    assert s3_client.head_object(Bucket=s3_bucket, Key="obj")["ETag"].endswith('-3"')


def test_an_object_of_exactly_one_part(s3_bucket: str, s3_client: Any) -> None:
    store = S3Store.from_url(f"s3://{s3_bucket}", part_size=MIN_PART_SIZE)
    assert store.put("obj", zeros(MIN_PART_SIZE)) == MIN_PART_SIZE
    assert s3_client.head_object(Bucket=s3_bucket, Key="obj")["ContentLength"] == MIN_PART_SIZE


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        (None, DEFAULT_PART_SIZE),
        (0, DEFAULT_PART_SIZE),
        (10 * 1024 * MiB, DEFAULT_PART_SIZE),  # 10 GiB: 1,280 parts of 8 MiB
        (100 * 1024 * MiB, 21 * MiB),  # 100 GiB: 4,877 parts, room for a hint 2x too low
        (5 * 1024 * 1024 * MiB, 1049 * MiB),  # 5 TiB, S3's largest object
    ],
)
def test_part_size_follows_the_size_hint(hint: int | None, expected: int) -> None:
    assert base_part_size(hint) == expected


def test_part_size_grows_only_past_nine_thousand_parts() -> None:
    base = DEFAULT_PART_SIZE
    assert {part_size_for(n, base) for n in range(1, 9001)} == {base}
    sizes = [part_size_for(n, base) // base for n in (9001, 9100, 9101, 9201)]
    assert sizes == [2, 2, 4, 8]
    assert part_size_for(10_000, base) == 5 * 1024 * MiB  # capped at S3's largest part
    total = sum(part_size_for(n, base) for n in range(1, 10_001))
    assert total > 1024 * 1024 * MiB  # without a hint, 10,000 parts still hold over 1 TiB


def test_put_with_size_hint(s3_bucket: str, s3_client: Any) -> None:
    store = S3Store.from_url(f"s3://{s3_bucket}", part_size=MIN_PART_SIZE)
    store.put("obj", zeros(BIG), size_hint=30 * 1024 * MiB)  # 30 GiB / 5,000 parts: 7 MiB
    assert s3_client.head_object(Bucket=s3_bucket, Key="obj", PartNumber=1)["ContentLength"] == 7 * MiB


def test_endpoint_argument_beats_the_environment(
    s3_bucket: str, s3_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    store = S3Store.from_url(f"s3://{s3_bucket}/p", endpoint_url=s3_server.url)
    store.put("obj", [b"x"])
    assert [o.name for o in store.list()] == ["obj"]
    assert store.describe("obj") == f"s3://{s3_bucket}/p/obj"


def test_endpoint_from_aws_endpoint_url(s3_store_url: str, s3_server: MotoServer) -> None:
    opened = open_store(s3_store_url)
    assert isinstance(opened, RetryingStore) and isinstance(opened.store, S3Store)
    store = opened.store
    assert store.endpoint == s3_server.url
    store.put("obj", [b"x"])
    assert store.url == s3_store_url


def test_local_store_ignores_s3_options(tmp_path: Path) -> None:
    store = open_store(str(tmp_path), endpoint_url="http://nowhere", sse="AES256")
    assert isinstance(store, LocalStore)


def test_open_does_not_read_the_object_into_memory(s3_bucket: str) -> None:
    store = S3Store.from_url(f"s3://{s3_bucket}", part_size=MIN_PART_SIZE)
    store.put("obj", zeros(40 * MiB))
    tracemalloc.start()
    try:
        with store.open("obj") as f:
            total = sum(len(piece) for piece in iter(lambda: f.read(MiB), b""))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == 40 * MiB
    assert peak < 8 * MiB


def test_missing_bucket_is_not_found_with_a_hint(s3_env: dict[str, str]) -> None:
    store = S3Store.from_url("s3://no-such-bucket-here/p")
    for call in (store.list, lambda: store.put("obj", [b"x"]), lambda: store.put("obj", zeros(BIG))):
        with pytest.raises(NotFound) as info:
            call()
        assert "no-such-bucket-here" in str(info.value)
        hint = info.value.hint or ""
        assert "s3://no-such-bucket-here" in hint and "create" in hint
        assert one_line(info.value)
    with pytest.raises(NotFound):
        store.open("obj")


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MotoServer, dict[str, str]]]:
    """A moto_server that checks credentials: one user allowed s3:*, one bucket; any other key is refused."""
    with MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": "4"}) as server:
        kw = {"endpoint_url": server.url, "region_name": REGION}
        kw |= {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", **kw)
        iam.create_user(UserName="backup")
        key = iam.create_access_key(UserName="backup")["AccessKey"]
        allow = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="backup", PolicyName="s3", PolicyDocument=json.dumps(allow))
        boto3.client("s3", **kw).create_bucket(Bucket="guarded")
        env = aws_env(server.url, tmp_path_factory.mktemp("aws"))
        env |= {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        yield server, env


@pytest.mark.parametrize("wrong", ["key", "secret"])
def test_wrong_credentials_are_permission_denied(
    auth_server: tuple[MotoServer, dict[str, str]], monkeypatch: pytest.MonkeyPatch, wrong: str
) -> None:
    _, env = auth_server
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    S3Store.from_url("s3://guarded/p").put("ok", [b"right credentials work"])
    secret = "wrong-secret-do-not-print"
    if wrong == "key":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY0000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    store = S3Store.from_url("s3://guarded/p")
    for call in (store.list, lambda: store.put("obj", [b"x"]), lambda: store.open("ok")):
        with pytest.raises(PermissionDenied) as info:
            call()
        assert "AWS_ACCESS_KEY_ID" in (info.value.hint or "") and "AWS_PROFILE" in (info.value.hint or "")
        assert secret not in str(info.value) + (info.value.hint or "")
        assert one_line(info.value)


def test_no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_server: MotoServer) -> None:
    for name in (*AWS_ENV_CLEARED, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in aws_env(s3_server.url, tmp_path).items():
        if not name.endswith(("_KEY_ID", "_ACCESS_KEY")):
            monkeypatch.setenv(name, value)
    for name in ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(PermissionDenied, match=r"^no AWS credentials found$") as info:
        S3Store.from_url("s3://any-bucket/p").list()
    assert "AWS_ACCESS_KEY_ID" in (info.value.hint or "")


def test_dead_endpoint_is_transient_and_fast(s3_env: dict[str, str]) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = S3Store.from_url("s3://bucket/p", endpoint_url=endpoint)
    for call in (store.list, lambda: store.put("obj", zeros(BIG)), lambda: store.open("obj")):
        started = time.monotonic()
        with pytest.raises(Transient) as info:
            call()
        assert time.monotonic() - started < 10
        assert endpoint in str(info.value)
        assert one_line(info.value)


def test_endpoint_dying_mid_upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with MotoServer() as server:
        for name, value in aws_env(server.url, tmp_path).items():
            monkeypatch.setenv(name, value)
        boto3.client("s3").create_bucket(Bucket="doomed")
        store = S3Store.from_url("s3://doomed/p", part_size=MIN_PART_SIZE)

        def stream() -> Iterator[bytes]:
            yield from zeros(12 * MiB)
            server.stop()  # the first two parts are up, the upload is open
            yield from zeros(12 * MiB)

        started = time.monotonic()
        with pytest.raises(StoreError) as info:
            store.put("obj", stream())
    assert time.monotonic() - started < 20
    assert isinstance(info.value, Transient)
    assert server.url in str(info.value) and one_line(info.value)


def test_endpoint_dying_mid_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with MotoServer() as server:
        for name, value in aws_env(server.url, tmp_path).items():
            monkeypatch.setenv(name, value)
        boto3.client("s3").create_bucket(Bucket="doomed")
        store = S3Store.from_url("s3://doomed/p")
        store.put("obj", zeros(64 * MiB))
        with store.open("obj") as f:
            f.read(MiB)
            server.stop()
            with pytest.raises(Transient) as info:
                while f.read(MiB):
                    pass
    assert one_line(info.value)


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("NoSuchKey", 404, NotFound),
        ("404", 404, NotFound),
        ("AccessDenied", 403, PermissionDenied),
        ("SignatureDoesNotMatch", 403, PermissionDenied),
        ("RequestTimeTooSkewed", 403, PermissionDenied),
        ("SlowDown", 503, Transient),
        ("InternalError", 500, Transient),
        ("ServiceUnavailable", 503, Transient),
        ("KMS.NotFoundException", 400, StoreError),
    ],
)
def test_error_mapping(code: str, status: int, kind: type[StoreError]) -> None:
    """Faults moto cannot produce on demand (throttling, 5xx), built as botocore builds them."""
    response = {
        "Error": {"Code": code, "Message": "line one\nline two"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    error = map_error(ClientError(response, "PutObject"), "upload", "s3://b/p/x", "b", "https://s3.example")
    assert type(error) is kind
    assert one_line(error)


def test_connection_errors_are_transient() -> None:
    exc = EndpointConnectionError(endpoint_url="https://s3.example")
    error = map_error(exc, "list", "s3://b/p", "b", "https://s3.example")
    assert isinstance(error, Transient) and "https://s3.example" in str(error)


@pytest.mark.slow
def test_put_memory_is_bounded(s3_bucket: str) -> None:
    store = S3Store.from_url(f"s3://{s3_bucket}")  # 8 MiB parts
    total = 200 * MiB
    tracemalloc.start()
    try:
        started = time.monotonic()
        assert store.put("big", zeros(total)) == total
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"200 MiB put: peak {peak / MiB:.1f} MiB, {total / MiB / elapsed:.0f} MiB/s (under tracemalloc)")
    assert peak < 4 * DEFAULT_PART_SIZE  # three parts (uploading, queued, filling) and change
    assert [(o.name, o.size) for o in store.list()] == [("big", total)]


class NoConditionalWrites:
    """An endpoint without conditional writes, as some S3-compatibles are: moto honours If-None-Match, so this
    answers any request carrying it with 501 NotImplemented before it is sent (the one fault injected here)."""

    def __init__(self, store: S3Store) -> None:
        self.refused: list[str] = []
        store._client.meta.events.register("before-send.s3", self)

    def __call__(self, request: Any, **kwargs: Any) -> Any:
        if "If-None-Match" not in request.headers:
            return None
        self.refused.append(request.method)
        body = b"<Error><Code>NotImplemented</Code><Message>If-None-Match is not supported</Message></Error>"
        return AWSResponse(request.url, 501, {"Content-Type": "application/xml"}, _Raw(body))


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._body


@pytest.mark.parametrize("size", [10, BIG], ids=["put-object", "multipart"])
def test_if_absent_without_conditional_writes_checks_first(s3_bucket: str, s3_client: Any, size: int) -> None:
    store = S3Store.from_url(f"s3://{s3_bucket}/p", part_size=MIN_PART_SIZE)
    endpoint = NoConditionalWrites(store)
    assert store.put("db/obj", zeros(size), if_absent=True) == size
    assert len(endpoint.refused) == 1  # refused once, then not asked again
    with pytest.raises(AlreadyExists):
        store.put("db/obj", [b"other"], if_absent=True)
    with pytest.raises(AlreadyExists):
        store.put("db/obj", zeros(BIG), if_absent=True)
    assert len(endpoint.refused) == 1
    assert s3_client.head_object(Bucket=s3_bucket, Key="p/db/obj")["ContentLength"] == size
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_a_refused_conditional_complete_aborts_the_upload(s3_bucket: str, s3_client: Any) -> None:
    """moto, like AWS, keeps the upload open when CompleteMultipartUpload fails its condition (measured)."""
    store = S3Store.from_url(f"s3://{s3_bucket}/p", part_size=MIN_PART_SIZE)
    store.put("obj", [b"first"])
    with pytest.raises(AlreadyExists) as info:
        store.put("obj", zeros(BIG), if_absent=True)
    assert f"s3://{s3_bucket}/p/obj" in str(info.value) and one_line(info.value)
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert store.open("obj").read() == b"first"


def test_leftovers_report_uploaded_bytes_and_only_under_the_prefix(s3_bucket: str, s3_client: Any) -> None:
    for key in ("p/db/obj", "other/obj"):
        upload_id = s3_client.create_multipart_upload(Bucket=s3_bucket, Key=key)["UploadId"]
        for number in (1, 2):
            s3_client.upload_part(
                Bucket=s3_bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=bytes(MIN_PART_SIZE)
            )
    store = S3Store.from_url(f"s3://{s3_bucket}/p")
    [left] = store.leftovers()
    assert (left.kind, left.name, left.size, left.in_use) == ("unfinished upload", "db/obj", 2 * MIN_PART_SIZE, False)
    forged = Leftover(left.kind, left.name, left.key.replace("p/db/obj", "other/obj"), 0, left.started)
    with pytest.raises(StoreError):
        store.remove_leftover(forged)
    store.remove_leftover(left)
    assert [u["Key"] for u in s3_client.list_multipart_uploads(Bucket=s3_bucket)["Uploads"]] == ["other/obj"]


def test_list_walks_every_depth_and_skips_foreign_keys(s3_bucket: str, s3_client: Any) -> None:
    for key in ("p/a/b/c", "p/a/.hidden/x", "p/a//double", f"p/x{TEMP_MARK}", "p/top", "pother/no"):
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"x")
    store = S3Store.from_url(f"s3://{s3_bucket}/p")
    assert [o.name for o in store.list()] == ["a/b/c", "top"]
    assert [o.name for o in store.list("a/")] == ["a/b/c"]
    assert [o.name for o in store.list("t")] == ["top"]


def test_open_store_passes_the_region(s3_env: dict[str, str]) -> None:
    opened = open_store("s3://bucket/p", region="eu-central-1")
    assert isinstance(opened, RetryingStore) and isinstance(opened.store, S3Store)
    store = opened.store
    assert store._client.meta.region_name == "eu-central-1"
