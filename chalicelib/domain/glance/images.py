"""Glance image records: create, patch, tags, (de)activate, delete; every status change goes
through ``move`` and the one transition table (domain/states.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from pynamodb.exceptions import DeleteError

from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore
from chalicelib.adapters.glance_models import (
    IN_FLIGHT,
    IN_FLIGHT_STATUSES,
    GlanceImageModel,
    GlanceMemberModel,
)
from chalicelib.auth import Principal
from chalicelib.config import Settings
from chalicelib.domain.glance import access, image_fields
from chalicelib.domain.glance.access import UUID, is_admin, is_tenant_id, now, owned, visible
from chalicelib.domain.glance.patching import apply_patch
from chalicelib.domain.states import GLANCE_IMAGE_TRANSITIONS, can_move
from chalicelib.errors import BadRequest, Conflict, Forbidden, NotFound


def create(body: Any, principal: Principal, settings: Settings) -> GlanceImageModel:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    values = dict(body)
    image_id = values.pop("id", None)
    owner = values.pop("owner", None)
    if image_id is None:
        image_id = str(uuid.uuid4())
    elif not isinstance(image_id, str) or not UUID.match(image_id):
        raise BadRequest(f"Invalid value for 'id': {image_id!r} is not a UUID.")
    if owner is not None and owner != principal.tenant and not is_admin(principal):
        raise Forbidden("You are not permitted to create images owned by another project.")
    if owner is not None and not is_tenant_id(owner):
        raise BadRequest(f"Invalid value for 'owner': {owner!r}")
    checked = image_fields.checked(values, principal)
    image_fields.check_quotas(checked, settings)
    stamp = now()
    image = GlanceImageModel(
        id=image_id,
        owner=owner or principal.tenant,
        created=stamp,
        created_id=f"{stamp}#{image_id}",
        updated=stamp,
        visibility="shared",
    )
    _assign(image, checked)
    return records.save_new(
        image, GlanceImageModel.id, f"Image with identifier {image_id} already exists!"
    )


def _assign(image: GlanceImageModel, values: dict[str, Any]) -> None:
    """Set base fields and custom properties from checked ``values`` (a full picture)."""
    properties = {}
    for name, value in values.items():
        if name in image_fields.SETTABLE:
            setattr(image, name, value)
        else:
            properties[name] = value
    image.properties = properties
    image.listed = image.visibility if image.visibility in ("public", "community") else None


def editable(image: GlanceImageModel) -> dict[str, Any]:
    """What a patch works on: settable base fields and the custom properties."""
    document = {name: getattr(image, name) for name in image_fields.SETTABLE}
    document["tags"] = list(image.tags or [])
    document.update(image.properties or {})
    return document


def update(
    image_id: str, operations: Any, principal: Principal, settings: Settings, draft: int = 10
) -> GlanceImageModel:
    def change(image: GlanceImageModel) -> None:
        before = {**editable(image), "owner": image.owner}
        after = apply_patch(before, operations, draft)
        changed = {k: v for k, v in after.items() if before.get(k, _ABSENT) != v}
        removed = [k for k in before if k not in after]
        for name in removed:
            if name in (*image_fields.SETTABLE, "owner"):
                raise Forbidden(f"Property {name} may not be removed.")
        owner = after.pop("owner")
        if "owner" in changed:
            if not is_admin(principal):
                raise Forbidden("Owner can't be updated by non admin.")
            if not is_tenant_id(owner):
                raise BadRequest(f"Invalid value for 'owner': {owner!r}")
            del changed["owner"]
        for name in ("disk_format", "container_format"):
            if name in changed and image.status != "queued":
                raise Forbidden(f"Attribute {name} can be only replaced for a queued image.")
        merged = {**after, **image_fields.checked(changed, principal)}
        image_fields.check_quotas(merged, settings)
        _assign(image, merged)
        image.owner = owner
        if changed or removed or owner != before["owner"]:
            image.updated = now()

    return _change(image_id, principal, change)


_ABSENT = object()


def _change(
    image_id: str, principal: Principal, change: Callable[[GlanceImageModel], None]
) -> GlanceImageModel:
    owned(image_id, principal)
    return access.change(image_id, change, missing=NotFound)


def move(image: GlanceImageModel, status: str) -> None:
    """The one place an image's status changes (the caller saves)."""
    if image.status == status:
        return
    if not can_move(GLANCE_IMAGE_TRANSITIONS, image.status, status):
        raise Conflict(f"Image status transition from {image.status} to {status} is not allowed")
    image.status = status
    image.updated = now()
    image.in_flight = IN_FLIGHT if status in IN_FLIGHT_STATUSES else None


def add_tag(image_id: str, tag: str, principal: Principal, settings: Settings) -> None:
    image_fields.check_tag(tag)

    def change(image: GlanceImageModel) -> None:
        if tag in image.tags:
            return
        image_fields.check_tag_count([*image.tags, tag], settings)
        image.tags = [*image.tags, tag]
        image.updated = now()

    _change(image_id, principal, change)


def delete_tag(image_id: str, tag: str, principal: Principal) -> None:
    def change(image: GlanceImageModel) -> None:
        if tag not in image.tags:
            raise NotFound(f"Tag {tag} not found")
        image.tags = [t for t in image.tags if t != tag]
        image.updated = now()

    _change(image_id, principal, change)


def deactivate(image_id: str, principal: Principal) -> None:
    def change(image: GlanceImageModel) -> None:
        if image.status not in ("active", "deactivated"):
            raise Forbidden(f"Not allowed to deactivate image in status '{image.status}'")
        move(image, "deactivated")

    _change(image_id, principal, change)


def reactivate(image_id: str, principal: Principal) -> None:
    def change(image: GlanceImageModel) -> None:
        if image.status not in ("active", "deactivated"):
            raise Forbidden(f"Not allowed to reactivate image in status '{image.status}'")
        move(image, "active")

    _change(image_id, principal, change)


def delete(image_id: str, principal: Principal, store: ArtifactStore) -> None:
    image = owned(image_id, principal, "delete")
    if image.protected:
        raise Forbidden(f"Image {image_id} is protected and cannot be deleted.")
    move(image, "deleted")
    try:  # with the version check: a concurrent change (protected now?) is the caller's to see
        image.delete()
    except DeleteError as exc:
        if not records.lost_race(exc):
            raise
        raise Conflict(f"Image {image_id} changed while it was being deleted; retry.") from exc
    for member in GlanceMemberModel.query(image_id):  # whatever they answered meanwhile
        member.delete(add_version_condition=False)
    for key in data_keys(image):
        store.delete(key)


def data_keys(image: GlanceImageModel) -> list[str]:
    """The S3 objects that belong to the image (not a build's artifact it only points at)."""
    keys = [image.data_key] if image.data_key and image.data_owned else []
    if image.staged:
        keys.append(image.staged["key"])
    return keys


def show(image_id: str, principal: Principal) -> GlanceImageModel:
    return visible(image_id, principal)
