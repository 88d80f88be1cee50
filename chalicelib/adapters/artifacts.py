"""S3: the artifact key scheme, presigned URLs and reads. The only module that talks to S3."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

from chalicelib.errors import Invalid

CHUNK = 1024 * 1024


def recipe_key(recipe_id: str) -> str:
    return f"recipes/{recipe_id}/recipe.tar.gz"


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


def job_cancel_key(job_id: str) -> str:
    """Present once a job's owner cancelled it; the build host watches for it."""
    return f"control/jobs/{job_id}/cancel"


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
        body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            yield from iter(lambda: body.read(CHUNK), b"")
        finally:
            body.close()

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

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

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
