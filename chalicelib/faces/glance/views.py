"""Glance's JSON bodies for images, pages of images and members."""

from __future__ import annotations

import urllib.parse
from typing import Any

from chalicelib.adapters.glance_models import GlanceImageModel, GlanceMemberModel
from chalicelib.domain.glance.access import shown


def image(record: GlanceImageModel) -> dict[str, Any]:
    body: dict[str, Any] = {
        **{name: ("" if value is None else value) for name, value in record.properties.items()},
        "id": record.id,
        "name": record.name,
        "status": record.status,
        "visibility": record.visibility,
        "protected": bool(record.protected),
        "os_hidden": bool(record.os_hidden),
        "disk_format": record.disk_format,
        "container_format": record.container_format,
        "min_disk": int(record.min_disk or 0),
        "min_ram": int(record.min_ram or 0),
        "size": None if record.size is None else int(record.size),
        "virtual_size": None if record.virtual_size is None else int(record.virtual_size),
        "checksum": record.checksum,
        "os_hash_algo": record.os_hash_algo,
        "os_hash_value": record.os_hash_value,
        "owner": record.owner,
        "tags": list(record.tags or []),
        "created_at": shown(record.created),
        "updated_at": shown(record.updated),
        "self": f"/v2/images/{record.id}",
        "file": f"/v2/images/{record.id}/file",
        "schema": "/v2/schemas/image",
    }
    return body


def page(
    images: list[GlanceImageModel], more: bool, query: list[tuple[str, str]]
) -> dict[str, Any]:
    """``query``: the request's parameters in order; ``first`` drops the marker, ``next``
    continues after the last image shown."""
    rest = [(k, v) for k, v in query if k != "marker"]
    body: dict[str, Any] = {
        "images": [image(i) for i in images],
        "schema": "/v2/schemas/images",
        "first": _link(rest),
    }
    if more and images:
        body["next"] = _link([*rest, ("marker", images[-1].id)])
    return body


def _link(query: list[tuple[str, str]]) -> str:
    return "/v2/images" + (f"?{urllib.parse.urlencode(query)}" if query else "")


def member(record: GlanceMemberModel) -> dict[str, Any]:
    return {
        "image_id": record.image_id,
        "member_id": record.member_id,
        "status": record.status,
        "created_at": shown(record.created),
        "updated_at": shown(record.updated),
        "schema": "/v2/schemas/member",
    }


def members(records: list[GlanceMemberModel]) -> dict[str, Any]:
    return {"members": [member(m) for m in records], "schema": "/v2/schemas/members"}
