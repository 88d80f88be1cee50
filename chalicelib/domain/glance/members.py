"""Image members: the owner shares a ``shared`` image with a tenant, which accepts or rejects.
The owner adds and removes members; only the member changes its own status."""

from __future__ import annotations

from typing import Any

from chalicelib.adapters import records
from chalicelib.adapters.glance_models import GlanceImageModel, GlanceMemberModel
from chalicelib.auth import Principal
from chalicelib.config import Settings
from chalicelib.domain.glance.access import is_admin, is_tenant_id, membership, now, visible
from chalicelib.errors import BadRequest, Forbidden, NotFound, QuotaExceeded

STATUSES = ("pending", "accepted", "rejected")


def _is_owner(image: GlanceImageModel, principal: Principal) -> bool:
    return is_admin(principal) or image.owner == principal.tenant


def _shared(image_id: str, principal: Principal) -> GlanceImageModel:
    image = visible(image_id, principal)
    if image.visibility != "shared":
        raise Forbidden(f"Only shared images have members. Image {image_id} is {image.visibility}.")
    return image


def add(image_id: str, body: Any, principal: Principal, settings: Settings) -> GlanceMemberModel:
    image = _shared(image_id, principal)
    if not _is_owner(image, principal):
        raise Forbidden(f"You are not permitted to share image {image_id}.")
    member_id = body.get("member") if isinstance(body, dict) else None
    if not is_tenant_id(member_id) or not member_id.strip():
        raise BadRequest("Member to be added not specified")
    if member_id == image.owner:
        raise Forbidden("The owner of an image cannot be one of its members.")
    count = GlanceMemberModel.count(image_id)
    if count >= settings.glance_member_quota:
        raise QuotaExceeded(
            f"Maximum number of image members ({settings.glance_member_quota}) exceeded."
        )
    stamp = now()
    member = GlanceMemberModel(
        image_id=image_id,
        member_id=member_id,
        image_created_id=image.created_id,
        status="pending",
        created=stamp,
        updated=stamp,
    )
    return records.save_new(
        member,
        GlanceMemberModel.member_id,
        f"Member {member_id} already exists for image {image_id}",
    )


def listed(image_id: str, principal: Principal) -> list[GlanceMemberModel]:
    """The owner sees every member; a member sees only itself."""
    image = _shared(image_id, principal)
    if _is_owner(image, principal):
        return list(GlanceMemberModel.query(image_id))
    own = membership(image_id, principal.tenant)
    return [own] if own else []


def show(image_id: str, member_id: str, principal: Principal) -> GlanceMemberModel:
    image = _shared(image_id, principal)
    member = membership(image_id, member_id)
    may_see = _is_owner(image, principal) or member_id == principal.tenant
    if member is None or not may_see:
        raise NotFound(f"Member {member_id} not found for image {image_id}")
    return member


def set_status(image_id: str, member_id: str, body: Any, principal: Principal) -> GlanceMemberModel:
    image = _shared(image_id, principal)
    status = body.get("status") if isinstance(body, dict) else None
    if status not in STATUSES:
        raise BadRequest(f"Status must be one of {list(STATUSES)}, not {status!r}.")
    if member_id != principal.tenant:
        # as Glance: another tenant's membership is not found unless the caller owns the image
        if membership(image_id, member_id) is None or not _is_owner(image, principal):
            raise NotFound(f"Member {member_id} not found for image {image_id}")
        if not is_admin(principal):
            raise Forbidden("Only the member may change its membership status.")

    def change(member: GlanceMemberModel) -> None:
        if member.status != status:
            member.status = status
            member.updated = now()

    def load() -> GlanceMemberModel:
        member = membership(image_id, member_id)
        if member is None:
            raise NotFound(f"Member {member_id} not found for image {image_id}")
        return member

    return records.change_versioned(load, change, f"member {member_id} of image {image_id}")


def remove(image_id: str, member_id: str, principal: Principal) -> None:
    image = _shared(image_id, principal)
    if not _is_owner(image, principal):
        raise Forbidden(f"You are not permitted to unshare image {image_id}.")
    member = membership(image_id, member_id)
    if member is None:
        raise NotFound(f"Member {member_id} not found for image {image_id}")
    member.delete(add_version_condition=False)  # the owner's word stands, whatever the answer
