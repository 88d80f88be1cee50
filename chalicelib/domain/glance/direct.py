"""Kiln's extension for clients that can go straight to S3: presigned multipart upload URLs.
Completing the upload stores the object; its S3 upload event (bucket -> SQS -> upload handler)
computes size and hashes (the shared upload checks, domain/uploads) and activates the image.
Until then the image is ``saving``."""

from __future__ import annotations

import re
import time
from typing import Any

from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore, glance_direct_key
from chalicelib.adapters.glance_models import GlanceImageModel
from chalicelib.auth import Principal
from chalicelib.domain.glance import access
from chalicelib.domain.glance.access import owned
from chalicelib.domain.glance.data import Digest, activate
from chalicelib.domain.glance.images import move
from chalicelib.domain.uploads.hashing import hash_all
from chalicelib.errors import BadRequest, Conflict

MAX_PARTS = 10000
#: part URLs one start hands out: each carries the signer's session token (about 1.4 KB on
#: Lambda), and a Lambda function answers at most 6 MB (10,000 of them were 14 MB: API Gateway's
#: 502). 1,000 parts of up to 5 GiB hold more than the default image size cap (1 TiB).
MAX_URLS = 1000
#: an ETag as S3 gives it (quoted hex, maybe with -<parts>): printable ASCII, which S3's XML
#: request can carry (control characters cannot be sent at all)
_ETAG = re.compile(r"[\x20-\x7e]{1,1024}")
KEY_PREFIX, KEY_SUFFIX = "glance/", "/direct"


def start(image_id: str, body: Any, principal: Principal, store: ArtifactStore) -> dict[str, Any]:
    parts = (body or {}).get("parts", 1) if isinstance(body, dict | type(None)) else None
    if isinstance(parts, bool) or not isinstance(parts, int) or not 1 <= parts <= MAX_URLS:
        raise BadRequest(f"'parts' must be an integer from 1 to {MAX_URLS}.")
    image = owned(image_id, principal, "upload data to")
    if image.disk_format is None or image.container_format is None:
        raise BadRequest(
            "Properties disk_format, container_format must be set prior to saving data."
        )
    key = glance_direct_key(image_id)
    upload_id = store.start_upload(key)

    def change(fresh: GlanceImageModel) -> None:
        if fresh.status != "queued":
            raise Conflict(f"Image status transition from {fresh.status} to saving is not allowed")
        move(fresh, "saving")
        fresh.direct_upload = {"key": key, "upload_id": upload_id, "started": time.time()}

    try:
        access.change(image_id, change, missing=Conflict)
    except BaseException:
        store.abort_upload(key, upload_id)
        raise
    return {
        "upload_id": upload_id,
        "parts": [
            {"part_number": n, "url": store.presign_part(key, upload_id, n)}
            for n in range(1, parts + 1)
        ],
        "expires_in": store.presign_seconds,
        "complete": f"/v2/images/{image_id}/direct-upload/complete",
    }


def complete(image_id: str, body: Any, principal: Principal, store: ArtifactStore) -> None:
    image = owned(image_id, principal, "upload data to")
    upload = _open_upload(image)
    given = body.get("parts") if isinstance(body, dict) else None
    if not isinstance(given, list) or not given or len(given) > MAX_PARTS:
        raise BadRequest(
            f"'parts' must list each uploaded part (at most {MAX_PARTS}): {{part_number, etag}}."
        )
    parts = []
    for part in given:
        number = part.get("part_number") if isinstance(part, dict) else None
        etag = part.get("etag") if isinstance(part, dict) else None
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_PARTS:
            raise BadRequest(f"Each part needs a 'part_number' from 1 to {MAX_PARTS}.")
        if not isinstance(etag, str) or not _ETAG.fullmatch(etag):
            raise BadRequest("Each part needs the 'etag' S3 answered to its upload.")
        parts.append({"PartNumber": number, "ETag": etag})
    store.complete_upload(upload["key"], upload["upload_id"], parts)


def abort(image_id: str, principal: Principal, store: ArtifactStore) -> None:
    image = owned(image_id, principal, "upload data to")
    upload = _open_upload(image)
    store.abort_upload(upload["key"], upload["upload_id"])
    store.delete(upload["key"])  # completed already, its event not yet handled: gone too

    def change(fresh: GlanceImageModel) -> None:
        if fresh.status == "saving" and fresh.direct_upload:
            move(fresh, "queued")
            fresh.direct_upload = None

    access.change(image_id, change, missing=Conflict)


def _open_upload(image: GlanceImageModel) -> dict[str, Any]:
    if image.status != "saving" or not image.direct_upload:
        raise Conflict(f"Image {image.id} has no direct upload open (status {image.status}).")
    return dict(image.direct_upload)


def image_of(key: str) -> str | None:
    """The image a direct-upload key belongs to (glance/<id>/direct), else None."""
    if key.startswith(KEY_PREFIX) and key.endswith(KEY_SUFFIX):
        return key[len(KEY_PREFIX) : -len(KEY_SUFFIX)] or None
    return None


def arrived(key: str, store: ArtifactStore, etag: str = "", cap: int | None = None) -> str:
    """The upload event of a completed direct upload: hash the object, activate the image.
    A stale event (the object since replaced or removed) does nothing; data over the size cap
    is removed and the image is queued again, as a refused PUT /file leaves it."""
    image_id = image_of(key)
    image = records.find(GlanceImageModel, image_id) if image_id else None
    if image is None:
        store.delete(key)
        return "deleted: no such image"
    if image.status != "saving" or (image.direct_upload or {}).get("key") != key:
        return f"ignored: image is {image.status}"
    head = store.head(key)
    if head is None:
        return "ignored: the object is gone"
    if etag and str(head.get("ETag", "")).strip('"') != etag:
        return "ignored: the object was replaced since"
    if cap is not None and int(head.get("ContentLength", 0)) > cap:
        store.delete(key)
        _requeue(image.id, key)
        return "refused: over the image size cap"
    digest = Digest()
    hash_all(store.stream(key), digest)

    def change(fresh: GlanceImageModel) -> None:
        if fresh.status == "saving" and (fresh.direct_upload or {}).get("key") == key:
            activate(fresh, key, digest)
            fresh.direct_upload = None

    access.change(image.id, change, missing=Conflict)
    return "active"


def _requeue(image_id: str, key: str) -> None:
    def change(fresh: GlanceImageModel) -> None:
        if fresh.status == "saving" and (fresh.direct_upload or {}).get("key") == key:
            move(fresh, "queued")
            fresh.direct_upload = None

    access.change(image_id, change, missing=Conflict)
