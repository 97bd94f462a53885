"""Blob store in an S3-compatible object store (AWS S3, MinIO, Ceph RGW), through boto3.

``s3://bucket/prefix?endpoint=http://minio:9000&region=us-east-1`` — credentials come from the
usual places (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile, an instance role).
``public_endpoint=`` names the address clients use when it differs from the server's (presigned
URLs are signed for the host the client connects to).

Layout under the prefix::

    blobs/<key>          immutable blobs
    uploads/<id>         the multipart upload of one upload session; once completed, the
                         whole file waits here until it is verified and copied into blobs/

Clients PUT slices straight to the store at presigned part URLs, so an upload's bytes never pass
through openpan; completing one asks the store to join the parts, then reads the result back
once to check its md5 before anything refers to it. boto3 is synchronous and thread-safe, so
every call runs in a worker thread; nothing proportional to a file's size is held in memory.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse

import anyio
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from openpan.storage.base import Assembled, Chunks, PartInfo, StorageError
from openpan.storage.inputs import checked_blob_key, checked_upload_id, exactly
from openpan.storage.temp_files import TempFolder

log = logging.getLogger("openpan.storage.s3")

T = TypeVar("T")

# S3 refuses multipart parts below 5 MiB (all but the last); so do MinIO and Ceph.
MIN_PART_SIZE = 5 * 1024 * 1024
READ_CHUNK = 1024 * 1024
KNOWN_UPLOADS = 10_000
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
# Objects up to this size are copied in one request; larger ones by a multipart copy.
_TRANSFER = TransferConfig(
    multipart_threshold=512 * 1024 * 1024,
    multipart_chunksize=64 * 1024 * 1024,
    max_concurrency=4,
)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Store(TempFolder):
    """``s3://bucket/prefix``: blobs as objects; uploads as S3 multipart uploads."""

    min_part_size = MIN_PART_SIZE
    put_moves = False  # an upload of the whole file

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        region: str | None = None,
        public_endpoint: str | None = None,
        temp_dir: Path | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("s3:// storage URL needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        config = Config(
            region_name=region or "us-east-1",
            signature_version="s3v4",
            # Path-style addressing is what self-hosted stores answer to; AWS accepts both.
            s3={"addressing_style": "path" if endpoint else "auto"},
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=64,
            connect_timeout=10,
            read_timeout=120,
        )
        session = boto3.session.Session()
        self.client: Any = session.client("s3", endpoint_url=endpoint or None, config=config)
        self.presigner: Any = (
            session.client("s3", endpoint_url=public_endpoint, config=config)
            if public_endpoint
            else self.client
        )
        self.tmp = (temp_dir or Path("./openpan-data/tmp")).resolve()
        self.tmp.mkdir(parents=True, exist_ok=True)
        # upload session ID → S3 UploadId, the most recent few; any process can find one it
        # does not know by listing.
        self._multipart_ids: OrderedDict[str, str] = OrderedDict()

    # Plumbing ------------------------------------------------------------------------------

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a boto3 call in a thread; vendor errors become ``StorageError``."""
        try:
            return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise FileNotFoundError(str(exc)) from exc
            raise StorageError(f"object store: {_code(exc) or exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"object store unreachable: {exc}") from exc

    def _blob_key(self, key: str) -> str:
        return f"{self.prefix}blobs/{checked_blob_key(key)}"

    def _upload_key(self, upload_id: str) -> str:
        return f"{self.prefix}uploads/{checked_upload_id(upload_id)}"

    async def check(self) -> None:
        """Raise ``StorageError`` unless the bucket answers (readiness probes)."""
        try:
            await self._call(self.client.head_bucket, Bucket=self.bucket)
        except FileNotFoundError as exc:
            raise StorageError(f"bucket {self.bucket!r} does not exist") from exc

    # Blobs ---------------------------------------------------------------------------------

    async def exists(self, key: str) -> bool:
        try:
            await self._call(self.client.head_object, Bucket=self.bucket, Key=self._blob_key(key))
        except FileNotFoundError:
            return False
        return True

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await self._call(self.client.delete_object, Bucket=self.bucket, Key=self._blob_key(key))

    def local_path(self, key: str) -> Path | None:
        return None

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        return self._read_object(self._blob_key(key), start, end)

    async def _read_object(
        self, full_key: str, start: int, end: int | None
    ) -> AsyncIterator[bytes]:
        if end is not None and end <= start:
            return
        extra: dict[str, str] = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        answer = await self._call(self.client.get_object, Bucket=self.bucket, Key=full_key, **extra)
        body = answer["Body"]
        try:
            while True:
                chunk = await self._call(body.read, READ_CHUNK)
                if not chunk:
                    break
                yield chunk
        finally:
            # Back to the pool (or closed) even when the reader stops early.
            body.close()

    def presign_get(
        self,
        key: str,
        expires_in: int,
        *,
        media_type: str | None = None,
        download_name: str | None = None,
        cache_control: str | None = None,
    ) -> str | None:
        """A short-lived URL at which the client GETs the blob itself (redirect serving)."""
        params: dict[str, str] = {"Bucket": self.bucket, "Key": self._blob_key(key)}
        if media_type:
            params["ResponseContentType"] = media_type
        if download_name is not None:
            params["ResponseContentDisposition"] = _attachment(download_name)
        if cache_control:
            params["ResponseCacheControl"] = cache_control
        url: str = self.presigner.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires_in
        )
        return url

    async def put_file(self, key: str, path: Path) -> None:
        target = self._blob_key(key)
        await self._call(self.client.upload_file, str(path), self.bucket, target, Config=_TRANSFER)
        path.unlink(missing_ok=True)

    # Multipart uploads ---------------------------------------------------------------------

    async def start_upload(self, upload_id: str, size: int, part_size: int) -> None:
        answer = await self._call(
            self.client.create_multipart_upload,
            Bucket=self.bucket,
            Key=self._upload_key(upload_id),
        )
        self._remember(upload_id, answer["UploadId"])

    def _remember(self, upload_id: str, multipart: str) -> None:
        self._multipart_ids[upload_id] = multipart
        while len(self._multipart_ids) > KNOWN_UPLOADS:
            self._multipart_ids.popitem(last=False)

    async def _multipart_id(self, upload_id: str) -> str | None:
        """The S3 UploadId of a session: remembered here, or found by listing (another
        process may have started it)."""
        known = self._multipart_ids.get(upload_id)
        if known is not None:
            return known
        key = self._upload_key(upload_id)
        answer = await self._call(
            self.client.list_multipart_uploads, Bucket=self.bucket, Prefix=key
        )
        mine = [u for u in answer.get("Uploads", []) if u["Key"] == key]
        if not mine:
            return None
        mine.sort(key=lambda u: u["Initiated"])
        self._remember(upload_id, str(mine[0]["UploadId"]))
        return str(mine[0]["UploadId"])

    async def presign_part(self, upload_id: str, number: int, expires_in: int) -> str | None:
        multipart = await self._multipart_id(upload_id)
        if multipart is None:
            raise StorageError("upload not started")
        # Signing is local computation: no round trip to the store.
        url: str = self.presigner.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": self.bucket,
                "Key": self._upload_key(upload_id),
                "UploadId": multipart,
                "PartNumber": number,
            },
            ExpiresIn=expires_in,
        )
        return url

    async def write_part(
        self, upload: str, number: int, offset: int, size: int, body: Chunks, md5: str | None = None
    ) -> None:
        multipart = await self._multipart_id(upload)
        if multipart is None:
            raise StorageError("upload not started")
        # Spooled to a local file first: S3 needs the length and md5 before the first byte.
        # A known md5 is not computed again: the store checks it against the bytes anyway.
        path = self.temp_path()
        hasher = hashlib.md5()
        try:
            async with await anyio.open_file(path, "wb") as handle:
                async for chunk in exactly(body, size):
                    if md5 is None:
                        hasher.update(chunk)
                    await handle.write(chunk)
            digest = hasher.digest() if md5 is None else bytes.fromhex(md5)

            def send() -> None:
                with open(path, "rb") as source:
                    self.client.upload_part(
                        Bucket=self.bucket,
                        Key=self._upload_key(upload),
                        UploadId=multipart,
                        PartNumber=number,
                        Body=source,
                        ContentLength=size,
                        ContentMD5=base64.b64encode(digest).decode(),
                    )

            try:
                await self._call(send)
            except FileNotFoundError as exc:
                raise StorageError("upload not started") from exc
        finally:
            path.unlink(missing_ok=True)

    async def part_numbers(self, upload_id: str) -> set[int]:
        return {part.number for part in await self._parts(upload_id)}

    async def list_parts(self, upload_id: str, part_size: int) -> list[PartInfo]:
        # The store's ETag of a part is its md5 (sent as Content-MD5 with it).
        return await self._parts(upload_id)

    async def _parts(self, upload_id: str) -> list[PartInfo]:
        multipart = await self._multipart_id(upload_id)
        if multipart is None:
            return []
        found: list[PartInfo] = []
        marker = 0
        while True:
            try:
                answer = await self._call(
                    self.client.list_parts,
                    Bucket=self.bucket,
                    Key=self._upload_key(upload_id),
                    UploadId=multipart,
                    PartNumberMarker=marker,
                )
            except FileNotFoundError:
                self._multipart_ids.pop(upload_id, None)
                return []
            for part in answer.get("Parts", []):
                found.append(
                    PartInfo(
                        number=int(part["PartNumber"]),
                        size=int(part["Size"]),
                        md5=str(part["ETag"]).strip('"'),
                    )
                )
            if not answer.get("IsTruncated"):
                break
            marker = int(answer["NextPartNumberMarker"])
        found.sort(key=lambda p: p.number)
        return found

    async def assemble(self, upload_id: str, part_count: int) -> Assembled:
        key = self._upload_key(upload_id)
        multipart = await self._multipart_id(upload_id)
        if multipart is not None:
            parts = {p.number: p for p in await self._parts(upload_id)}
            missing = [n for n in range(1, part_count + 1) if n not in parts]
            if missing:
                raise StorageError(f"slices missing: {missing[:10]}")
            # Not found: an earlier run of the same job completed it already.
            with contextlib.suppress(FileNotFoundError):
                await self._call(
                    self.client.complete_multipart_upload,
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=multipart,
                    MultipartUpload={
                        "Parts": [
                            {"PartNumber": n, "ETag": f'"{parts[n].md5}"'}
                            for n in range(1, part_count + 1)
                        ]
                    },
                )
            self._multipart_ids.pop(upload_id, None)
        # Read back what the store now holds: the md5 is checked on these bytes, not the parts'.
        hasher = hashlib.md5()
        size = 0
        try:
            async for chunk in self._read_object(key, 0, None):
                hasher.update(chunk)
                size += len(chunk)
        except FileNotFoundError as exc:
            raise StorageError("slices missing: the upload holds no data") from exc
        return Assembled(md5=hasher.hexdigest(), size=size)

    async def commit_upload(self, upload_id: str, key: str) -> None:
        source = self._upload_key(upload_id)
        await self._call(
            self.client.copy,
            {"Bucket": self.bucket, "Key": source},
            self.bucket,
            self._blob_key(key),
            Config=_TRANSFER,
        )
        await self.abort_upload(upload_id)

    async def abort_upload(self, upload_id: str) -> None:
        key = self._upload_key(upload_id)
        self._multipart_ids.pop(upload_id, None)
        answer = await self._call(
            self.client.list_multipart_uploads, Bucket=self.bucket, Prefix=key
        )
        for upload in answer.get("Uploads", []):
            if upload["Key"] != key:
                continue
            with contextlib.suppress(FileNotFoundError):
                await self._call(
                    self.client.abort_multipart_upload,
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload["UploadId"],
                )
        with contextlib.suppress(FileNotFoundError):
            await self._call(self.client.delete_object, Bucket=self.bucket, Key=key)

    async def list_uploads(self) -> list[str]:
        root = f"{self.prefix}uploads/"
        found: set[str] = set()

        def collect() -> None:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=root
            ):
                found.update(u["Key"][len(root) :] for u in page.get("Uploads", []))
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=root
            ):
                found.update(o["Key"][len(root) :] for o in page.get("Contents", []))

        await self._call(collect)
        return sorted(u for u in found if u and "/" not in u)


def _attachment(name: str) -> str:
    """``Content-Disposition`` for a download, safe for any name (RFC 6266 / 5987)."""
    from urllib.parse import quote

    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def from_url(url: str, temp_dir: Path | None = None) -> S3Store:
    """An ``S3Store`` for ``s3://bucket/prefix?endpoint=...&region=...&public_endpoint=...``."""
    parsed = urlparse(url)
    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    unknown = set(query) - {"endpoint", "region", "public_endpoint"}
    if unknown:
        raise ValueError(f"unknown s3:// URL parameters: {', '.join(sorted(unknown))}")
    return S3Store(
        parsed.netloc,
        parsed.path,
        endpoint=query.get("endpoint"),
        region=query.get("region"),
        public_endpoint=query.get("public_endpoint"),
        temp_dir=temp_dir,
    )
