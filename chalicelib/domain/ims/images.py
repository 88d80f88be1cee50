"""Image records: made by a successful job, or registered by a user with a manifest link."""

from __future__ import annotations

from typing import Any

from chalicelib import safe_json
from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore
from chalicelib.adapters.models import ImageModel
from chalicelib.auth import Principal
from chalicelib.config import ARCHES
from chalicelib.domain.ims import artifact_links, image_metadata
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
    metadata = image_metadata.initial(check)
    check.done()
    image = ImageModel(name=name, arch=arch or "x86_64", metadata=metadata)
    records.stamp(image, principal.tenant, KIND)
    if link is not None:
        image.link = _checked_link(link, image.tenant, store)
    return records.insert(image)


def _checked_link(link: dict[str, str], tenant: str, store: ArtifactStore) -> dict[str, str]:
    """The link with the manifest's etag, if the tenant may link it and it exists."""
    head = store.head(artifact_links.entitled_key(store, link["path"], tenant))
    if head is None:
        raise Invalid(f"link.path {link['path']} does not exist", {"link": ["no such object"]})
    return {**link, "etag": str(head.get("ETag", "")).strip('"')}


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
    """IMS image PATCH: set a link once (409 if it has another), change arch, set/remove
    metadata."""
    image = get(principal, image_id)
    check = BodyCheck(require_object(body), known=("link", "arch", "metadata"))
    link = check.link()
    arch = check.choice("arch", ARCHES)
    operations = image_metadata.operations(check)
    check.done()
    if link is not None and not _same_link(image.link, link):
        if image.link:
            raise Conflict(f"image {image_id} already has a link; it cannot be changed")
        image.link = _checked_link(link, image.tenant, store)
    if arch is not None:
        image.arch = arch
    image.metadata = image_metadata.apply(image.metadata or {}, operations)
    return records.save_or_conflict(image, f"image {image_id}")


def _same_link(current: dict[str, str] | None, given: dict[str, str]) -> bool:
    """As IMS: PATCHing the link an image already has is not a conflict."""
    return current is not None and all(current.get(k) == v for k, v in given.items())


def get(principal: Principal, image_id: str) -> ImageModel:
    return records.get_visible(ImageModel, image_id, principal, "image", KIND)


def list_for(principal: Principal) -> list[ImageModel]:
    return records.list_visible(ImageModel, principal, KIND)


def manifest(principal: Principal, image_id: str, store: ArtifactStore) -> dict[str, Any]:
    """The image's manifest.json, with a presigned ``download_url`` on each artifact its tenant
    may read (and on the manifest)."""
    image = get(principal, image_id)
    if not image.link:
        raise NotFound(f"image {image_id} has no manifest link")
    key = store.own_key(image.link["path"])
    if key is None or not artifact_links.may_link(key, image.tenant) or store.head(key) is None:
        raise NotFound(f"the manifest of image {image_id} is missing from the artifact store")
    try:
        document = safe_json.loads(store.read(key))
    except safe_json.MalformedJSON as exc:
        raise Invalid(f"the manifest of image {image_id} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise Invalid(f"the manifest of image {image_id} is not a JSON object")
    for artifact in artifact_links.listed_artifacts(store, document, image.tenant):
        artifact["entry"]["download_url"] = store.presign_get(artifact["key"])
    document["download_url"] = store.presign_get(key)
    return document
