"""Image records: made by a successful job, or registered by a user with a manifest link."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore
from chalicelib.adapters.models import ImageModel
from chalicelib.auth import Principal
from chalicelib.config import ARCHES
from chalicelib.domain.validation import BodyCheck, require_object
from chalicelib.errors import Conflict, Invalid, NotFound

KIND = "image"


def create(principal: Principal, body: Any, store: ArtifactStore) -> ImageModel:
    check = BodyCheck(
        require_object(body),
        known=("name", "link", "arch", "metadata"),
        read_only=("id", "created"),
    )
    name = check.string("name", required=True, min_len=1)
    arch = check.choice("arch", ARCHES)
    link = check.link()
    metadata = body.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        check.fail("metadata", "Must be an object of string values.")
    check.done()
    image = ImageModel(name=name, arch=arch or "x86_64", metadata=metadata or {})
    if link is not None:
        head = store.head(store.key_of(link["path"]))
        if head is None:
            raise Invalid(f"link.path {link['path']} does not exist", {"link": ["no such object"]})
        link["etag"] = str(head.get("ETag", "")).strip('"')
        image.link = link
    records.stamp(image, principal.tenant, KIND)
    return records.insert(image)


def record_build(
    image_id: str, tenant: str, name: str, arch: str, link: dict[str, str], job_id: str
) -> ImageModel:
    """The image a job built. Idempotent: a repeated result finds the image already there."""
    existing = records.find(ImageModel, image_id)
    if existing is not None:
        return existing
    image = ImageModel(name=name, arch=arch, link=link, metadata={}, source_job_id=job_id)
    records.stamp(image, tenant, KIND, record_id=image_id)
    try:
        return records.insert(image)
    except Conflict:  # a duplicate result won the race: that image is the one
        return records.find(ImageModel, image_id) or image


def patch(principal: Principal, image_id: str, body: Any, store: ArtifactStore) -> ImageModel:
    """IMS image PATCH: set a link once (409 if it has one), change arch, set/remove metadata."""
    image = get(principal, image_id)
    check = BodyCheck(require_object(body), known=("link", "arch", "metadata"))
    link = check.link()
    arch = check.choice("arch", ARCHES)
    operations = _metadata_operations(check)
    check.done()
    if link is not None:
        if image.link:
            raise Conflict(f"image {image_id} already has a link; it cannot be changed")
        head = store.head(store.key_of(link["path"]))
        if head is None:
            raise Invalid(f"link.path {link['path']} does not exist", {"link": ["no such object"]})
        link["etag"] = str(head.get("ETag", "")).strip('"')
        image.link = link
    if arch is not None:
        image.arch = arch
    metadata = dict(image.metadata or {})
    for operation, key, value in operations:
        if operation == "set":
            metadata[key] = value
        else:
            metadata.pop(key, None)
    image.metadata = metadata
    return records.save_or_conflict(image, f"image {image_id}")


def _metadata_operations(check: BodyCheck) -> list[tuple[str, str, str]]:
    value = check.body.get("metadata")
    if value is None:
        return []
    if not isinstance(value, list):
        check.fail("metadata", "A list of {operation, key, value} changes.")
        return []
    found = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"operation", "key", "value"}:
            check.fail("metadata", "Each change has only operation, key and value.")
            continue
        operation, key, text = item.get("operation"), item.get("key"), item.get("value")
        if operation not in ("set", "remove") or not isinstance(key, str) or not key:
            check.fail("metadata", "operation must be set or remove, with a non-empty key.")
        elif operation == "set" and not isinstance(text, str):
            check.fail("metadata", f"set {key}: value must be a string.")
        else:
            found.append((str(operation), key, str(text or "")))
    return found


def get(principal: Principal, image_id: str) -> ImageModel:
    return records.get_visible(ImageModel, image_id, principal, "image", KIND)


def list_for(principal: Principal) -> list[ImageModel]:
    return records.list_visible(ImageModel, principal, KIND)


def manifest(principal: Principal, image_id: str, store: ArtifactStore) -> dict[str, Any]:
    """The image's manifest.json, each artifact with a presigned ``download_url`` added."""
    image = get(principal, image_id)
    if not image.link:
        raise NotFound(f"image {image_id} has no manifest link")
    key = store.key_of(image.link["path"])
    if store.head(key) is None:
        raise NotFound(f"the manifest of image {image_id} is missing from the artifact store")
    try:
        document = json.loads(store.read(key))
    except ValueError as exc:
        raise Invalid(f"the manifest of image {image_id} is not JSON") from exc
    for artifact in document.get("artifacts", []):
        path = artifact.get("link", {}).get("path", "")
        if path.startswith(f"s3://{store.bucket}/"):
            artifact["download_url"] = store.presign_get(store.key_of(path))
    document["download_url"] = store.presign_get(key)
    return dict(document)
