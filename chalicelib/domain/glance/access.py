"""Who may see and change a Glance image. A caller never learns of an image it may not see:
that is 404, as Glance answers; seeing but not owning it is 403 where it tries to change it."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import TypeGuard

from chalicelib.adapters import records
from chalicelib.adapters.glance_models import GlanceImageModel, GlanceMemberModel
from chalicelib.auth import Principal
from chalicelib.errors import DomainError, Forbidden, Gone, NotFound

#: ``\Z``, not ``$``: a trailing newline is not part of a UUID (it would end up in headers)
UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}\Z")


def is_admin(principal: Principal) -> bool:
    return principal.role == "admin"


def now() -> str:
    """Creation/update time with microseconds (kept), shown to the second as Glance does."""
    return records.utc_now()


def shown(stamp: str) -> str:
    """'2026-11-22T19:00:00.123456Z' -> '2026-11-22T19:00:00Z'."""
    return stamp.split(".", 1)[0].rstrip("Z") + "Z"


def parse_time(text: str) -> datetime.datetime:
    """ISO 8601; no zone means UTC. ValueError when it is not a time."""
    value = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value


#: a tenant (owner, member) id takes at most this many characters: none longer is ever stored,
#: and DynamoDB refuses a lookup whose sort key passes 1,024 bytes (a 500, not a 404)
MAX_TENANT = 255


def is_tenant_id(value: object) -> TypeGuard[str]:
    """A project id as an owner or member: a string of 1 to MAX_TENANT characters."""
    return isinstance(value, str) and 0 < len(value) <= MAX_TENANT


def membership(image_id: str, tenant: str) -> GlanceMemberModel | None:
    if not is_tenant_id(tenant):
        return None
    try:
        return GlanceMemberModel.get(image_id, tenant, consistent_read=True)
    except GlanceMemberModel.DoesNotExist:
        return None


def can_see(image: GlanceImageModel, principal: Principal) -> bool:
    if is_admin(principal) or image.owner == principal.tenant:
        return True
    if image.visibility in ("public", "community"):
        return True
    return image.visibility == "shared" and membership(image.id, principal.tenant) is not None


def visible(image_id: str, principal: Principal) -> GlanceImageModel:
    """The image, if it exists and the caller may see it; a malformed id is not found too."""
    image = records.find(GlanceImageModel, image_id) if UUID.match(image_id) else None
    if image is None or not can_see(image, principal):
        raise NotFound(f"No image found with ID {image_id}")
    return image


def owned(image_id: str, principal: Principal, action: str = "modify") -> GlanceImageModel:
    """The image, if the caller owns it (or is an admin)."""
    image = visible(image_id, principal)
    if not (is_admin(principal) or image.owner == principal.tenant):
        raise Forbidden(f"You are not permitted to {action} image {image_id}.")
    return image


def change(
    image_id: str,
    change: Callable[[GlanceImageModel], None],
    missing: type[DomainError] = Gone,
) -> GlanceImageModel:
    """Read the image, ``change`` it, save with the version check (read again and retried when
    another writer won). An image deleted meanwhile raises ``missing``."""

    def load() -> GlanceImageModel:
        image = records.find(GlanceImageModel, image_id)
        if image is None and missing is NotFound:
            raise NotFound(f"No image found with ID {image_id}")
        if image is None:
            raise missing(f"Image {image_id} was deleted.")
        return image

    return records.change_versioned(load, change, f"image {image_id}")
