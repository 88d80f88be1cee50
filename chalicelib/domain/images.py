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


def get(principal: Principal, image_id: str) -> ImageModel:
    return records.get_visible(ImageModel, image_id, principal, "image")


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
