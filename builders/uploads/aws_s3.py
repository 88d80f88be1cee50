"""``aws.s3``: the disk image is already in S3 (``Reporter.publish_image`` put it under the
job's ``artifact_prefix``); the host only says which object it is. The API side presigns a
URL for it whenever the job is read, so the record never holds an expiring link.

options: ``{"region": ...}`` (the job's bucket is where the disk is, whatever the region).
upload_status options: ``{"bucket": <job bucket>, "key": <the disk artifact's key>}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from builders.backends.base import BuildError

if TYPE_CHECKING:
    from builders.uploads import UploadContext


def check(options: dict[str, Any]) -> None:
    region = options.get("region")
    if region is not None and not isinstance(region, str):
        raise BuildError("region must be a string")


def upload(ctx: UploadContext, options: dict[str, Any]) -> dict[str, Any]:
    disk = ctx.disk()
    ctx.log(f"I: kiln: aws.s3: the image is s3://{ctx.bucket}/{disk.key} ({disk.size} bytes)")
    return {"bucket": ctx.bucket, "key": disk.key}
