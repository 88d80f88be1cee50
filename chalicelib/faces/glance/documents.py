"""Static documents of the Glance Image API v2 face: JSON schemas, versions, import info.

Everything here mirrors what an upstream Glance (2024.x / 2025.x, single store, no image
cache) answers, extracted from Glance's own source so that python-glanceclient (which builds
warlock models from `GET /v2/schemas/image` and validates image bodies with them) and
openstacksdk work unchanged:

* base image properties: `glance/api/v2/images.py:get_base_properties`, kept verbatim in
  `documents/image-base-properties.json` (the two format enums are filled in from
  `DISK_FORMATS` / `CONTAINER_FORMATS` below, Glance's `[image_format]` defaults);
* custom properties: the `etc/schema-image.json` Glance ships and installs by default, kept in
  `documents/schema-image.json`; Glance marks each of them `"is_base": false`, which
  glanceclient reads to tell base from custom properties when it builds JSON patches;
* `glance/schema.py` (`PermissiveSchema.raw`, `Schema.minimal`, `CollectionSchema`) for the
  envelope, `glance/api/v2/schemas.py` for which of raw/minimal each endpoint serves;
* `glance/api/versions.py` and `glance/api/v2/discovery.py` for the other two documents.

Pure data: no Chalice or boto3 here. Every function returns a fresh copy the caller may mutate.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

from chalicelib.domain.glance import image_fields

_HERE = Path(__file__).with_name("documents")

# Glance's default `[image_format]` disk and container formats: the one list is the domain's,
# which checks requests against it.
DISK_FORMATS = image_fields.DISK_FORMATS
CONTAINER_FORMATS = image_fields.CONTAINER_FORMATS

# Every image status the schema allows (in Glance's order); clients may only read it.
IMAGE_STATUSES: tuple[str, ...] = (
    "queued",
    "saving",
    "active",
    "killed",
    "deleted",
    "uploading",
    "importing",
    "pending_delete",
    "deactivated",
)

# The values `visibility` may take.
VISIBILITIES: tuple[str, ...] = ("community", "public", "private", "shared")

# The values an image member's `status` may take.
MEMBER_STATUSES: tuple[str, ...] = ("pending", "accepted", "rejected")

# Names of the image schema's base properties (get_base_properties; they carry no `is_base`).
BASE_PROPERTIES: frozenset[str] = frozenset(
    {
        "id",
        "name",
        "status",
        "visibility",
        "protected",
        "os_hidden",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "owner",
        "size",
        "virtual_size",
        "container_format",
        "disk_format",
        "created_at",
        "updated_at",
        "tags",
        "direct_url",
        "min_ram",
        "min_disk",
        "self",
        "file",
        "stores",
        "schema",
        "locations",
    }
)

# Keys of a create body stored as image columns (RequestDeserializer._base_properties);
# every other key of the body is an extra property, whose value must be a string.
IMAGE_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "checksum",
        "created_at",
        "container_format",
        "disk_format",
        "id",
        "min_disk",
        "min_ram",
        "name",
        "size",
        "virtual_size",
        "status",
        "tags",
        "owner",
        "updated_at",
        "visibility",
        "protected",
        "os_hidden",
    }
)

# Present in a create body -> 403 "Attribute '<key>' is read-only." (_disallowed_properties).
DISALLOWED_PROPERTIES: frozenset[str] = frozenset(
    {"direct_url", "self", "file", "schema", "stores"}
)

# In a create body -> 403 "Attribute '<key>' is read-only." (ImageFactory._readonly_properties);
# `id` is NOT here: a client may choose the id on create.
CREATE_READ_ONLY_PROPERTIES: frozenset[str] = frozenset(
    {
        "created_at",
        "updated_at",
        "status",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "size",
        "virtual_size",
    }
)

# First path segment of a PATCH op -> 403 "Attribute '<key>' is read-only."
# (RequestDeserializer._readonly_properties; `id` can never change after create).
READ_ONLY_PROPERTIES: frozenset[str] = frozenset(
    {
        "created_at",
        "updated_at",
        "status",
        "checksum",
        "size",
        "virtual_size",
        "direct_url",
        "self",
        "file",
        "schema",
        "id",
        "os_hash_algo",
        "os_hash_value",
    }
)

# Extra-property key on create or PATCH path -> 403 "Attribute '<key>' is reserved."
# (RequestDeserializer._reserved_properties).
RESERVED_PROPERTIES: frozenset[str] = frozenset({"location", "deleted", "deleted_at"})

# Extra properties on create additionally refused as reserved (ImageFactory._reserved_properties
# minus the base properties the deserializer has already taken out of the body).
CREATE_RESERVED_PROPERTIES: frozenset[str] = RESERVED_PROPERTIES | {"locations"}

# Property-name prefix reserved to Glance itself (glance.api.common.GLANCE_RESERVED_NS):
# a user-set key starting with it -> 403 "Attribute '<key>' is reserved.".
RESERVED_NAMESPACE = "os_glance"

# Longest extra-property name Glance accepts on create (longer -> 400).
MAX_PROPERTY_NAME_LENGTH = 255


def is_reserved_property(name: str, *, on_create: bool = False) -> bool:
    """True when Glance answers 403 "reserved" for a user-set extra property / PATCH path root."""
    reserved = CREATE_RESERVED_PROPERTIES if on_create else RESERVED_PROPERTIES
    return name in reserved or name.startswith(RESERVED_NAMESPACE)


@functools.cache
def _load(name: str) -> dict[str, Any]:
    with (_HERE / name).open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def _image_properties() -> dict[str, Any]:
    properties = copy.deepcopy(_load("image-base-properties.json"))
    properties["container_format"]["enum"] = [None, *CONTAINER_FORMATS]
    properties["disk_format"]["enum"] = [None, *DISK_FORMATS]
    for name, spec in copy.deepcopy(_load("schema-image.json")).items():
        properties[name] = {**spec, "is_base": False}
    return properties


def image_schema() -> dict[str, Any]:
    """`GET /v2/schemas/image`: Glance's PermissiveSchema('image', ...).raw()."""
    return {
        "name": "image",
        "properties": _image_properties(),
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }


def images_schema() -> dict[str, Any]:
    """`GET /v2/schemas/images`: CollectionSchema('images', image).raw()."""
    return {
        "name": "images",
        "properties": {
            "images": {"type": "array", "items": image_schema()},
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"},
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }


def member_schema() -> dict[str, Any]:
    """`GET /v2/schemas/member`: Schema('member', ...).minimal() (no additionalProperties)."""
    properties = copy.deepcopy(_load("member-properties.json"))
    properties["status"]["enum"] = list(MEMBER_STATUSES)
    return {"name": "member", "properties": properties}


def members_schema() -> dict[str, Any]:
    """`GET /v2/schemas/members`: CollectionSchema('members', member).minimal()."""
    return {
        "name": "members",
        "properties": {
            "members": {"type": "array", "items": member_schema()},
            "schema": {"type": "string"},
        },
        "links": [{"rel": "describedby", "href": "{schema}"}],
    }


# Single store and no image cache: Glance lists exactly these, in this (odd) order.
_VERSIONS: tuple[tuple[str, str], ...] = (
    ("2.15", "SUPPORTED"),
    ("2.9", "SUPPORTED"),
    ("2.17", "CURRENT"),
    ("2.7", "SUPPORTED"),
    ("2.6", "SUPPORTED"),
    ("2.5", "SUPPORTED"),
    ("2.4", "SUPPORTED"),
    ("2.3", "SUPPORTED"),
    ("2.2", "SUPPORTED"),
    ("2.1", "SUPPORTED"),
    ("2.0", "SUPPORTED"),
)


def versions_document(base_url: str) -> dict[str, Any]:
    """The version list Glance serves, every version linking to `<base_url>/v2/`.

    The caller answers `GET /` with it and status 300 (Multiple Choices) and
    `GET /versions` with it and status 200, both as application/json.
    """
    href = base_url.rstrip("/") + "/v2/"
    return {
        "versions": [
            {"id": f"v{version}", "status": status, "links": [{"rel": "self", "href": href}]}
            for version, status in _VERSIONS
        ]
    }


def import_info_document(methods: list[str]) -> dict[str, Any]:
    """`GET /v2/info/import` body, advertising the enabled interoperable import methods."""
    return {
        "import-methods": {
            "description": "Import methods available.",
            "type": "array",
            "value": list(methods),
        }
    }
