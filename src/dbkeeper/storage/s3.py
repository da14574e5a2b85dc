"""An S3-compatible store: AWS S3, MinIO, Ceph, R2, ... anything that speaks the S3 API.

Objects live at ``s3://bucket/prefix/name``. A PutObject is atomic, and a multipart upload becomes an object
only when CompleteMultipartUpload succeeds, so ``put`` needs no temporary name: on any failure or interruption
the upload is aborted and nothing is visible. (If the abort itself cannot reach the endpoint, or the process is
killed, the unfinished upload stays invisible but billed: ``leftovers`` reports it and ``remove_leftover`` aborts
it; a bucket lifecycle rule ``AbortIncompleteMultipartUpload`` removes it too.)

``if_absent`` is a conditional write, ``If-None-Match: *`` on PutObject and on CompleteMultipartUpload (AWS since
2024, MinIO, moto): the endpoint refuses to replace an object, even one another writer stores at the same moment.
An endpoint that answers such a write with 501 NotImplemented gets a HeadObject before the write instead (and
for the rest of the store's life): a check that a concurrent writer can race, the best that endpoint allows.

Credentials come from boto3's standard chain (environment, profiles, instance and task roles); dbkeeper's
config never holds keys. The endpoint comes from ``endpoint_url``, else ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL`` (read here as well, so older botocore honours them too). Custom endpoints use
path-style addressing, which every S3-compatible server accepts (rclone's default too). Providers that reject
botocore's default CRC32 request checksums can set ``AWS_REQUEST_CHECKSUM_CALCULATION=when_required``.

Part size. Some providers (Cloudflare R2 among them) want every part but the last to be the same size, and S3
allows at most 10,000 parts, so the size is fixed before the first byte: 8 MiB, or ``size_hint / 5,000`` when
the caller knows roughly how big the stream is (room for a hint 2x too low). Memory is about three parts (one
uploading, one queued, one filling), so a bigger part costs memory; without a hint, equal 8 MiB parts carry an
object up to 70 GiB. Only a stream that outgrows 9,000 parts makes the size grow (doubling every 100 parts, so
10,000 parts hold 1.3 TiB; memory grows with the parts, which is why a big stream should come with a hint):
AWS and MinIO accept that; an equal-parts-only provider rejects it, but that object could not have been stored
with the chosen size anyway.
"""

from __future__ import annotations

import builtins
import io
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, BinaryIO

import boto3
import urllib3.exceptions
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from dbkeeper.errors import (
    AlreadyExists,
    NotFound,
    PermissionDenied,
    StoreError,
    StoreMissing,
    Transient,
    UsageError,
)
from dbkeeper.storage import Leftover, ObjectInfo, check_name, is_valid_name

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MiB
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
_MAX_PART_SIZE = 5 * 1024 * MiB
_MAX_PARTS = 10_000
_EQUAL_PARTS = 9_000
_HINT_PARTS = 5_000
_QUEUED = 2  # parts handed to the upload thread: one in flight, one waiting

_CONFIG = Config(
    connect_timeout=5,
    read_timeout=30,
    retries={"mode": "standard", "max_attempts": 3},
    tcp_keepalive=True,
)
_CREDENTIALS_HINT = (
    "check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the instance role) "
    "and that they may use this bucket"
)
_NOT_FOUND = {"NoSuchKey", "NotFound", "404"}
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
    "AccountProblem",
    "Forbidden",
    "403",
}
_EXISTS = {"PreconditionFailed", "ConditionalRequestConflict"}  # 412; 409 while another conditional write runs
_UNSUPPORTED = {"NotImplemented"}  # an endpoint without conditional writes (501)
_TRANSIENT = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError"}
_BOTO_ERRORS = (BotoCoreError, ClientError, urllib3.exceptions.HTTPError)
_NO_CREDENTIALS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError, ProfileNotFound)
_UNREACHABLE = (BotoConnectionError, HTTPClientError, IncompleteReadError, urllib3.exceptions.HTTPError)


def part_size_for(number: int, base: int) -> int:
    """The size of part ``number`` (1-based): ``base`` up to part 9,000, then doubling every 100 parts."""
    if number <= _EQUAL_PARTS:
        return base
    return min(base << ((number - _EQUAL_PARTS - 1) // 100 + 1), _MAX_PART_SIZE)


def base_part_size(size_hint: int | None, minimum: int = DEFAULT_PART_SIZE) -> int:
    """The equal part size for a stream of about ``size_hint`` bytes, in whole MiB."""
    if not size_hint:
        return minimum
    return max(minimum, -(-size_hint // _HINT_PARTS // MiB) * MiB)


def _split(chunks: Iterable[bytes], base: int) -> Iterator[bytearray]:
    """Cut the stream into parts of ``part_size_for(n, base)`` bytes; the last may be shorter (or empty)."""
    number, buf = 1, bytearray()
    for chunk in chunks:
        view = memoryview(chunk)
        while len(buf) + len(view) >= (size := part_size_for(number, base)):
            take = size - len(buf)
            buf += view[:take]
            view = view[take:]
            yield buf
            number, buf = number + 1, bytearray()
        buf += view
    if buf or number == 1:
        yield buf


def _drain(head: list[bytearray], rest: Iterator[bytearray]) -> Iterator[bytearray]:
    while head:
        yield head.pop()
    yield from rest


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


class S3Store:
    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        if sse not in (None, "AES256", "aws:kms"):
            raise UsageError(f"unknown server-side encryption {sse!r}", "use --sse AES256 or --sse aws:kms")
        if sse_kms_key_id and sse != "aws:kms":
            raise UsageError("--sse-kms-key-id needs --sse aws:kms")
        if part_size < MIN_PART_SIZE:
            raise UsageError(f"part size {part_size} is below S3's minimum of {MIN_PART_SIZE} bytes")
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._base = f"{self.prefix}/" if self.prefix else ""
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.part_size = part_size
        self._sse: dict[str, str] = {"ServerSideEncryption": sse} if sse else {}
        if sse_kms_key_id:
            self._sse["SSEKMSKeyId"] = sse_kms_key_id
        self._conditional = True  # False once the endpoint has refused If-None-Match as not implemented

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        endpoint_url: str | None = None,
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
        region: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> S3Store:
        """The store at ``s3://bucket/prefix``, with credentials from boto3's standard chain."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not url.startswith("s3://") or not bucket:
            raise UsageError(f"invalid S3 store URL {url!r}", "write it as s3://bucket/prefix")
        env = os.environ
        endpoint = endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        config = _CONFIG.merge(Config(s3={"addressing_style": "path"})) if endpoint else _CONFIG
        try:
            session = boto3.session.Session(region_name=region)
            client = session.client("s3", endpoint_url=endpoint, config=config)
        except ValueError as exc:
            raise UsageError(f"cannot set up S3 for {url}: {_one_line(str(exc))}") from exc
        except BotoCoreError as exc:
            raise map_error(exc, "connect to", url, bucket, endpoint or "S3") from exc
        return cls(client, bucket, prefix, sse=sse, sse_kms_key_id=sse_kms_key_id, part_size=part_size)

    @property
    def endpoint(self) -> str:
        return str(self._client.meta.endpoint_url)

    def _key(self, name: str) -> str:
        return self._base + check_name(name)

    def describe(self, name: str) -> str:
        return f"{self.url}/{name}"

    @contextmanager
    def _mapped(self, action: str, target: str) -> Iterator[None]:
        """Translate botocore's exceptions into the StoreError tree (httpx's map_httpcore_exceptions)."""
        try:
            yield
        except _BOTO_ERRORS as exc:
            raise map_error(exc, action, target, self.bucket, self.endpoint) from exc

    def put(self, name: str, chunks: Iterable[bytes], *, if_absent: bool = False, size_hint: int | None = None) -> int:
        """Upload the stream: one PutObject if it fits in one part, else a multipart upload of equal parts."""
        key, what = self._key(name), self.describe(name)
        base = base_part_size(size_hint, self.part_size)
        parts = _split(chunks, base)
        head = [next(parts)]  # a list the upload empties: nothing here pins the first part
        if len(head[0]) < base:
            body = head[0]
            self._write(
                key,
                what,
                if_absent,
                lambda extra: self._client.put_object(Bucket=self.bucket, Key=key, Body=body, **self._sse, **extra),
            )
            return len(body)
        if if_absent and not self._conditional:
            self._refuse_existing(key, what)
        return self._multipart(key, what, _drain(head, parts), if_absent)

    def _write(self, key: str, what: str, if_absent: bool, call: Callable[[dict[str, str]], Any]) -> None:
        """Make the write that creates the object (``call`` with extra request parameters), conditional when
        ``if_absent``; an endpoint that does not implement the condition gets a check before the write."""
        with self._mapped("upload", what):
            if not if_absent:
                call({})
                return
            if self._conditional:
                try:
                    call({"IfNoneMatch": "*"})
                    return
                except ClientError as exc:
                    if not _unsupported(exc):
                        raise
                self._conditional = False
            self._refuse_existing(key, what)
            call({})

    def _refuse_existing(self, key: str, what: str) -> None:
        """AlreadyExists if ``key`` holds an object (the check for endpoints without conditional writes)."""
        with self._mapped("check", what):
            try:
                self._client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if isinstance(map_error(exc, "check", what, self.bucket, self.endpoint), NotFound):
                    return
                raise
        raise _already_exists(what)

    def _multipart(self, key: str, what: str, parts: Iterator[bytearray], if_absent: bool = False) -> int:
        """Upload the parts through one thread, then complete; on any failure or interruption (a boto error, the
        stream's own exception, KeyboardInterrupt, a refused complete) abort the upload before raising."""
        done: list[dict[str, Any]] = []
        pending: deque[Future[dict[str, Any]]] = deque()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbkeeper-s3-upload")
        total = 0
        upload_id = ""
        try:
            # inside the try: an interruption right after the upload is created still aborts it
            upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=key, **self._sse)["UploadId"]
            for number, part in enumerate(parts, start=1):
                if number > _MAX_PARTS:
                    raise StoreError(
                        f"{what} needs more than {_MAX_PARTS} parts", "pass a size hint so parts start bigger"
                    )
                total += len(part)
                while len(pending) >= _QUEUED:
                    done.append(pending.popleft().result())
                pending.append(pool.submit(self._upload_part, key, upload_id, number, part))
                del part
            while pending:
                done.append(pending.popleft().result())
            self._write(
                key,
                what,
                if_absent,
                lambda extra: self._client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}, **extra
                ),
            )
        except BaseException as exc:
            try:
                for future in pending:
                    future.cancel()
                pool.shutdown(wait=True)  # a part in flight would outlive the abort
            finally:
                aborted = not upload_id or self._abort(key, upload_id)
            if isinstance(exc, _BOTO_ERRORS):
                error = map_error(exc, "upload", what, self.bucket, self.endpoint)
                if not aborted:
                    error.hint = f"{error.hint}; an unfinished (invisible) upload may remain"
                raise error from exc
            if isinstance(exc, StoreError) and not aborted:
                exc.hint = f"{exc.hint or 'retry'}; an unfinished (invisible) upload may remain"
            raise
        finally:
            pool.shutdown(wait=False)
        return total

    def _upload_part(self, key: str, upload_id: str, number: int, body: bytearray) -> dict[str, Any]:
        response = self._client.upload_part(
            Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    def _abort(self, key: str, upload_id: str) -> bool:
        """Abort the upload; False if the endpoint could not be told (the upload then stays a leftover)."""
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except _BOTO_ERRORS:
            return False
        return True

    def leftovers(self) -> list[Leftover]:
        """Unfinished multipart uploads under the prefix: a killed writer's, or one whose abort failed. S3 cannot
        tell a running upload from an abandoned one, so ``in_use`` is False: ``started`` is the clue."""
        out = []
        paginator = self._client.get_paginator("list_multipart_uploads")
        with self._mapped("list unfinished uploads in", self.url):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._base):
                for upload in page.get("Uploads", []):
                    key, upload_id = upload["Key"], upload["UploadId"]
                    size = self._uploaded(key, upload_id)
                    out.append(
                        Leftover(
                            "unfinished upload",
                            key[len(self._base) :],
                            f"{key}\n{upload_id}",
                            size,
                            upload["Initiated"],
                        )
                    )
        return sorted(out, key=lambda o: (o.name, o.key))

    def _uploaded(self, key: str, upload_id: str) -> int:
        """The bytes the upload's parts hold (0 if it went away meanwhile)."""
        total = 0
        try:
            for page in self._client.get_paginator("list_parts").paginate(
                Bucket=self.bucket, Key=key, UploadId=upload_id
            ):
                total += sum(part["Size"] for part in page.get("Parts", []))
        except ClientError as exc:
            if isinstance(map_error(exc, "list", key, self.bucket, self.endpoint), NotFound):
                return 0
            raise
        return total

    def remove_leftover(self, leftover: Leftover) -> None:
        """Abort the unfinished upload (an upload gone already is not an error)."""
        key, _, upload_id = leftover.key.rpartition("\n")
        if not key.startswith(self._base) or not upload_id:
            raise StoreError(f"{leftover.key!r} is not an unfinished upload of {self.url}; not removed")
        what = f"unfinished upload of s3://{self.bucket}/{key}"
        try:
            with self._mapped("abort", what):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except NotFound:
            return

    def open(self, name: str) -> BinaryIO:
        """A buffered stream over the object's body; the object is never read into memory whole."""
        what = self.describe(name)
        with self._mapped("open", what):
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"]
        return io.BufferedReader(_Body(body, self, what), buffer_size=MiB)

    def list(self, prefix: str = "", *, skip: tuple[str, ...] = ()) -> list[ObjectInfo]:
        """Every object below the store's prefix starting with ``prefix``; keys that are no valid object name
        (a dot or temporary part, an empty part: another tool's, or planted) are skipped. With ``skip``, one
        listing by directory at ``prefix``'s level, then each directory not skipped in full."""
        out: list[ObjectInfo] = []
        paginator = self._client.get_paginator("list_objects_v2")
        with self._mapped("list", self.url):
            if skip and (not prefix or prefix.endswith("/")):
                dirs = []
                for page in paginator.paginate(Bucket=self.bucket, Prefix=self._base + prefix, Delimiter="/"):
                    out += self._infos(page)
                    dirs += [p["Prefix"][len(self._base) :] for p in page.get("CommonPrefixes", [])]
                for d in dirs:
                    if d not in skip:
                        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._base + d):
                            out += self._infos(page)
            else:
                for page in paginator.paginate(Bucket=self.bucket, Prefix=self._base + prefix):
                    out += self._infos(page)
        return sorted(out, key=lambda o: o.name)

    def _infos(self, page: dict[str, Any]) -> builtins.list[ObjectInfo]:
        out = []
        for obj in page.get("Contents", []):
            name = obj["Key"][len(self._base) :]
            if is_valid_name(name):
                out.append(ObjectInfo(name, obj["Size"], obj["LastModified"]))
        return out

    def exists(self) -> bool:
        """Whether the bucket is there (HeadBucket); a prefix holding nothing yet is an empty store."""
        try:
            with self._mapped("open", self.url):
                self._client.head_bucket(Bucket=self.bucket)
        except StoreMissing:
            return False
        except NotFound:  # HeadBucket answers a bare 404, no NoSuchBucket code
            return False
        return True

    def delete(self, name: str) -> None:
        with self._mapped("delete", self.describe(name)):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(name))


class _Body(io.RawIOBase):
    """botocore's StreamingBody as a raw stream whose read errors are StoreErrors."""

    def __init__(self, body: Any, store: S3Store, what: str) -> None:
        self._body, self._store, self._what = body, store, what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with self._store._mapped("read", self._what):
            data = self._body.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _unsupported(exc: ClientError) -> bool:
    """Whether the endpoint refused a conditional write as not implemented (rather than the condition failing)."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in _UNSUPPORTED or int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) == 501


def _already_exists(target: str) -> AlreadyExists:
    return AlreadyExists(
        f"{target} already exists; it was not replaced",
        "delete it first if it should be replaced, or store under another name",
    )


def map_error(exc: Exception, action: str, target: str, bucket: str, endpoint: str) -> StoreError:
    """One StoreError for one botocore failure: "cannot <action> <target>: <why>", the kind, what to try."""
    failed = f"cannot {action} {target}"
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if code == "NoSuchBucket":
            return StoreMissing(
                f"{failed}: bucket {bucket!r} does not exist",
                f"create it (aws s3 mb s3://{bucket}) or fix the store URL",
            )
        if code in _EXISTS or status == 412:
            return _already_exists(target)
        if code in _NOT_FOUND or status == 404:
            return NotFound(f"not found: {target}")
        if code == "RequestTimeTooSkewed":
            return PermissionDenied(f"{failed}: the system clock is off", "sync it (chrony, timedatectl)")
        if code in _DENIED or status == 403:
            return PermissionDenied(f"{failed}: access denied ({code or status})", _CREDENTIALS_HINT)
        if code in _TRANSIENT or status >= 500:
            return Transient(f"{failed}: {endpoint} answered {code or status}", f"retry later; check {endpoint}")
        message = _one_line(str(exc.response.get("Error", {}).get("Message", "")))
        return StoreError(f"{failed}: {code or status} {message}".rstrip())
    if isinstance(exc, _NO_CREDENTIALS):
        found = "no AWS credentials found" if isinstance(exc, NoCredentialsError) else _one_line(str(exc))
        return PermissionDenied(found, "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or use a role")
    if isinstance(exc, _UNREACHABLE):
        return Transient(
            f"{failed}: {endpoint} is unreachable ({type(exc).__name__})",
            "check that the endpoint is up and reachable (config [s3] endpoint_url or AWS_ENDPOINT_URL); then retry",
        )
    return StoreError(f"{failed}: {_one_line(str(exc))}")
