"""The fields of a Glance image a client may set, checked as Glance checks them: read-only and
reserved names are refused (403), bad values are 400, quotas on properties and tags are 413."""

from __future__ import annotations

from typing import Any

from chalicelib.auth import Principal
from chalicelib.config import Settings
from chalicelib.domain.glance.access import is_admin
from chalicelib.errors import BadRequest, Forbidden, QuotaExceeded

DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
VISIBILITIES = ("public", "private", "shared", "community")
#: set by Kiln only
READ_ONLY = frozenset(
    {
        "checksum",
        "created_at",
        "id",
        "os_hash_algo",
        "os_hash_value",
        "size",
        "status",
        "updated_at",
        "virtual_size",
        "direct_url",
        "self",
        "file",
        "schema",
        "stores",
    }
)
RESERVED = frozenset({"location", "deleted", "deleted_at", "locations"})
RESERVED_PREFIX = "os_glance"
#: what a client may set that is not a custom property
SETTABLE = (
    "name",
    "visibility",
    "protected",
    "os_hidden",
    "disk_format",
    "container_format",
    "min_disk",
    "min_ram",
    "tags",
)
MAX_TEXT = 255
#: a custom property's value: Glance keeps it in a TEXT column (65,535 bytes)
MAX_PROPERTY_VALUE = 65535
#: min_disk, min_ram: Glance keeps them in INTEGER columns (validate_mysql_int); DynamoDB would
#: refuse numbers past 38 digits or 1E+126, a 500 instead of Glance's 400
MAX_INT = 2**31 - 1


def refuse_unsettable(name: str) -> None:
    if name in READ_ONLY:
        raise Forbidden(f"Attribute '{name}' is read-only.")
    if name in RESERVED or name.startswith(RESERVED_PREFIX):
        raise Forbidden(f"Attribute '{name}' is reserved.")


def checked(values: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """``values`` (base fields and custom properties) with each value checked; raises on the
    first bad one. ``id`` and ``owner`` are the create call's business, not checked here."""
    for name in values:
        refuse_unsettable(name)
    return {name: _check(name, value, principal) for name, value in values.items()}


def check_quotas(values: dict[str, Any], settings: Settings) -> None:
    """Custom properties and tags of the image as it would be, against the quotas."""
    custom = [name for name in values if name not in SETTABLE]
    if len(custom) > settings.glance_property_quota:
        raise QuotaExceeded(
            f"Maximum number of image properties ({settings.glance_property_quota}) exceeded: "
            f"{len(custom)} given."
        )
    check_tag_count(values.get("tags") or [], settings)


def check_tag_count(tags: list[str], settings: Settings) -> None:
    if len(tags) > settings.glance_tag_quota:
        raise QuotaExceeded(
            f"Maximum number of image tags ({settings.glance_tag_quota}) exceeded: "
            f"{len(tags)} given."
        )


def check_tag(tag: Any) -> str:
    if not isinstance(tag, str) or not tag.strip():
        raise BadRequest(f"Invalid tag {tag!r}: a tag is a non-empty string.")
    if len(tag) > MAX_TEXT:
        raise BadRequest(f"Tag is longer than {MAX_TEXT} characters.")
    return tag


def _check(name: str, value: Any, principal: Principal) -> Any:
    if name == "name":
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
            raise BadRequest(f"Invalid value for 'name': a string of at most {MAX_TEXT} chars.")
        return value
    if name == "visibility":
        if value not in VISIBILITIES:
            raise BadRequest(f"Invalid visibility value: {value!r}")
        if value == "public" and not is_admin(principal):
            raise Forbidden("You are not authorized to complete publicize_image action.")
        return value
    if name in ("protected", "os_hidden"):
        if not isinstance(value, bool):
            raise BadRequest(f"Invalid value for '{name}': {value!r} is not a boolean.")
        return value
    if name in ("disk_format", "container_format"):
        allowed = DISK_FORMATS if name == "disk_format" else CONTAINER_FORMATS
        if value is not None and value not in allowed:
            raise BadRequest(f"Invalid value for '{name}': {value!r}; one of {list(allowed)}.")
        return value
    if name in ("min_disk", "min_ram"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadRequest(f"Invalid value for '{name}': a non-negative integer.")
        if value > MAX_INT:
            raise BadRequest(f"'{name}' value out of range, must not exceed {MAX_INT}.")
        return value
    if name == "tags":
        if not isinstance(value, list):
            raise BadRequest("Invalid value for 'tags': a list of strings.")
        return list(dict.fromkeys(check_tag(tag) for tag in value))
    if not isinstance(value, str):
        raise BadRequest(f"Invalid value for property '{name}': {value!r} is not a string.")
    if len(name) > MAX_TEXT:
        raise BadRequest(f"Property name is longer than {MAX_TEXT} characters.")
    if len(value) > MAX_PROPERTY_VALUE:
        raise BadRequest(
            f"Invalid value for property '{name}': longer than {MAX_PROPERTY_VALUE} characters."
        )
    return value
