"""S3: the artifact key scheme, presigned URLs and reads. The only module that talks to S3."""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any

from chalicelib.errors import BadRequest, Invalid

CHUNK = 1024 * 1024
PART = 8 * 1024 * 1024  # multipart part size for streamed uploads (S3's least is 5 MiB)
IN_FLIGHT = 2  # parts of one streamed upload sent at once


def recipe_prefix(recipe_id: str) -> str:
    return f"recipes/{recipe_id}/"


def recipe_key(recipe_id: str) -> str:
    return f"{recipe_prefix(recipe_id)}recipe.tar.gz"


def image_prefix(image_id: str) -> str:
    return f"images/{image_id}/"


def manifest_key(image_id: str) -> str:
    return f"{image_prefix(image_id)}manifest.json"


def job_log_key(job_id: str) -> str:
    return f"jobs/{job_id}/build.log"


def job_log_chunk_prefix(job_id: str) -> str:
    """While a job runs, its host writes the log as numbered chunks under this prefix."""
    return f"jobs/{job_id}/log/"


def compose_recipe_key(compose_id: str, index: int) -> str:
    """The kiln-debian recipe archive Kiln generated for a compose's image request."""
    return f"composes/{compose_id}/{index}/recipe.tar.gz"


def glance_data_key(image_id: str) -> str:
    """A Glance image's data, once uploaded or imported (streamed in by Kiln)."""
    return f"glance/{image_id}/data"


def glance_staging_key(image_id: str) -> str:
    """Data PUT to /stage, waiting for a glance-direct import."""
    return f"glance/{image_id}/staging"


def glance_direct_key(image_id: str) -> str:
    """Data a client uploads straight to S3 (presigned parts); its upload event activates it."""
    return f"glance/{image_id}/direct"


def job_cancel_key(job_id: str) -> str:
    """Present once a job's owner cancelled it; the build host watches for it."""
    return f"control/jobs/{job_id}/cancel"


BUILD_CACHE = "build-cache"


def build_cache_prefix(tenant: str) -> str:
    """A tenant's build cache (docs/build-cache.md): ``<key>/entry.json`` for each entry and
    ``<key>/<job_id>/`` for each set of artifacts a build of that plan published."""
    return f"{BUILD_CACHE}/{tenant}/"


def build_cache_entry_key(tenant: str, key: str) -> str:
    return f"{build_cache_prefix(tenant)}{key}/entry.json"


def node_control_key(xname: str) -> str:
    """{"registered": bool}: whether the build host may take work (it reads this, not DynamoDB)."""
    return f"control/build-nodes/{xname}.json"


#: artifacts of a soft-deleted record stay where they are, tagged with the deletion time
DELETED_TAG = "kiln-deleted"


def s3_url(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def parse_s3_url(path: str) -> tuple[str, str]:
    parsed = urllib.parse.urlparse(path)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise Invalid(
            f"link.path '{path}' is not an s3://bucket/key URL",
            {"link": "path must be s3://<bucket>/<key>"},
        )
    return parsed.netloc, parsed.path.lstrip("/")


class ObjectMissing(LookupError):
    """The object is not in the bucket (any more)."""


class ArtifactStore:
    """One bucket of artifacts. ``s3`` is a boto3 S3 client, created by the container."""

    def __init__(self, s3: Any, bucket: str, presign_seconds: int) -> None:
        self._s3 = s3
        self.bucket = bucket
        self._presign_seconds = presign_seconds

    def url(self, key: str) -> str:
        return s3_url(self.bucket, key)

    def key_of(self, path: str) -> str:
        """The key of an s3:// URL, which must name this deployment's bucket."""
        bucket, key = parse_s3_url(path)
        if bucket != self.bucket:
            raise Invalid(
                f"link.path names bucket '{bucket}'; artifacts must be in '{self.bucket}'",
                {"link": f"bucket must be {self.bucket}"},
            )
        return key

    def presign_put(self, key: str) -> str:
        return str(
            self._s3.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=self._presign_seconds,
            )
        )

    def presign_get(self, key: str) -> str:
        return str(
            self._s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=self._presign_seconds,
            )
        )

    @property
    def presign_seconds(self) -> int:
        return self._presign_seconds

    def head(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(self._s3.head_object(Bucket=self.bucket, Key=key))
        except self._s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def stream(self, key: str) -> Iterator[bytes]:
        yield from self.open(key)[1]

    def open(self, key: str) -> tuple[str, Iterator[bytes]]:
        """(ETag, chunks) of one read of the object: the ETag of exactly the bytes read.
        ObjectMissing if there is no such object."""
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=key)
        except self._s3.exceptions.ClientError as exc:
            if self._missing(exc):
                raise ObjectMissing(key) from exc
            raise
        return str(response.get("ETag", "")).strip('"'), _chunks(response["Body"])

    def read(self, key: str) -> bytes:
        return b"".join(self.stream(key))

    def sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        for chunk in self.stream(key):
            digest.update(chunk)
        return digest.hexdigest()

    def own_key(self, path: str) -> str | None:
        """The key of an s3:// URL in this bucket, else None (a foreign link is not ours)."""
        try:
            return self.key_of(path)
        except Invalid:
            return None

    def _missing(self, exc: Exception) -> bool:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        return code in ("404", "NoSuchKey", "NotFound")

    def tag_deleted(self, key: str, when: str) -> None:
        """Mark an object as belonging to a soft-deleted record (a missing object is fine)."""
        try:
            self._s3.put_object_tagging(
                Bucket=self.bucket,
                Key=key,
                Tagging={"TagSet": [{"Key": DELETED_TAG, "Value": when}]},
            )
        except self._s3.exceptions.ClientError as exc:
            if not self._missing(exc):
                raise

    def untag(self, key: str) -> None:
        try:
            self._s3.delete_object_tagging(Bucket=self.bucket, Key=key)
        except self._s3.exceptions.ClientError as exc:
            if not self._missing(exc):
                raise

    def tags(self, key: str) -> dict[str, str]:
        response = self._s3.get_object_tagging(Bucket=self.bucket, Key=key)
        return {t["Key"]: t["Value"] for t in response.get("TagSet", [])}

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=key)

    def objects(self, prefix: str) -> Iterator[tuple[str, float]]:
        """(key, last-modified epoch seconds) of every object under ``prefix``."""
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"], item["LastModified"].timestamp()

    def listing(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        """(key, size, last-modified epoch seconds) of every object under ``prefix``."""
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"], int(item["Size"]), item["LastModified"].timestamp()

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def delete_under(self, prefix: str) -> list[str]:
        """Delete every object under ``prefix`` (nothing there is fine); the keys deleted."""
        keys = [key for key, _ in self.objects(prefix)]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1000 keys at most
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return keys

    def put_json(self, key: str, document: Any) -> None:
        self._s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(document).encode(),
            ContentType="application/json",
        )

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def sizes(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of every object under ``prefix``, in key order."""
        paginator = self._s3.get_paginator("list_objects_v2")
        found = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            found += [(item["Key"], int(item["Size"])) for item in page.get("Contents", [])]
        return sorted(found)

    def read_from(self, key: str, start: int) -> bytes:
        """The object's bytes from ``start`` on (all of it when ``start`` is 0)."""
        if start <= 0:
            return self.read(key)
        body = self._s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-")["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    # -- streams: image data in and out without holding it in memory --------------------------
    def put_stream(self, key: str, chunks: Iterable[bytes], part_size: int = PART) -> int:
        """Write ``chunks`` to ``key`` as a multipart upload of ``part_size`` parts; the upload
        is aborted (nothing is left) if reading ``chunks`` or S3 fails. Returns the size."""
        upload = self._s3.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType="application/octet-stream"
        )["UploadId"]
        sent: list[concurrent.futures.Future[dict[str, Any]]] = []
        size = 0

        def send(number: int, body: bytes) -> dict[str, Any]:
            response = self._s3.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload, PartNumber=number, Body=body
            )
            return {"PartNumber": number, "ETag": response["ETag"]}

        # parts go up while the next ones are read: at most IN_FLIGHT parts are held at once
        with concurrent.futures.ThreadPoolExecutor(IN_FLIGHT, "s3-part") as senders:
            try:
                for number, part in enumerate(_parts(chunks, part_size), start=1):
                    size += len(part)
                    while sum(not f.done() for f in sent) >= IN_FLIGHT:
                        concurrent.futures.wait(sent, return_when="FIRST_COMPLETED")
                    sent.append(senders.submit(send, number, part))
                    del part
                if not sent:  # S3 wants at least one part: an empty object
                    sent.append(senders.submit(send, 1, b""))
                self.complete_upload(key, upload, [f.result() for f in sent])
            except BaseException:
                for future in sent:
                    future.cancel()
                self.abort_upload(key, upload)
                raise
        return size

    def start_upload(self, key: str) -> str:
        return str(self._s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"])

    def presign_part(self, key: str, upload_id: str, number: int) -> str:
        return str(
            self._s3.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "UploadId": upload_id,
                    "PartNumber": number,
                },
                ExpiresIn=self._presign_seconds,
            )
        )

    def complete_upload(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        """Join the parts; parts S3 does not know are the caller's mistake (BadRequest)."""
        try:
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except self._s3.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            if str(error.get("Code")) in (
                "InvalidPart",
                "InvalidPartOrder",
                "NoSuchUpload",
                "EntityTooSmall",
                "MalformedXML",
                "InvalidArgument",  # e.g. a part number out of range
            ):
                raise BadRequest(f"S3 refused the parts: {error.get('Message') or error}") from exc
            raise

    def abort_upload(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(Exception):
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def stream_range(self, key: str, first: int, last: int) -> Iterator[bytes]:
        """Bytes ``first``..``last`` (inclusive) of the object, in chunks."""
        response = self._s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={first}-{last}")
        body = response["Body"]
        try:
            yield from iter(lambda: body.read(CHUNK), b"")
        finally:
            body.close()

    def copy(self, source: str, target: str) -> None:
        self._s3.copy({"Bucket": self.bucket, "Key": source}, self.bucket, target)


def _chunks(body: Any) -> Iterator[bytes]:
    try:
        yield from iter(lambda: body.read(CHUNK), b"")
    finally:
        body.close()


def _parts(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Re-cut a stream of chunks into parts of exactly ``size`` bytes (the last may be less),
    copying each byte once."""
    held: list[bytes] = []
    count = 0
    for chunk in chunks:
        while chunk:
            take = chunk[: size - count] if count + len(chunk) > size else chunk
            chunk = chunk[len(take) :]
            held.append(take)
            count += len(take)
            if count == size:
                yield b"".join(held)
                held, count = [], 0
    if held:
        yield b"".join(held)
