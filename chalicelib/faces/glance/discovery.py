"""Version discovery, the JSON schemas and /v2/info: what clients read before anything else."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.auth import Principal
from chalicelib.domain.glance.imports import METHODS
from chalicelib.faces.glance import documents
from chalicelib.faces.glance.routing import GlanceCall, glance_route, respond

bp = Blueprint(__name__)
SCHEMAS = {
    "image": documents.image_schema,
    "images": documents.images_schema,
    "member": documents.member_schema,
    "members": documents.members_schema,
}


def _base_url(call: GlanceCall) -> str:
    scheme = call.headers.get("x-forwarded-proto", "http")
    return f"{scheme}://{call.headers.get('host', 'localhost')}"


@glance_route(bp, "/", ["GET"], public=True)
def root(principal: Principal | None, call: GlanceCall) -> Response:
    """openstacksdk and keystoneauth discover versions here: 300 Multiple Choices."""
    return respond(documents.versions_document(_base_url(call)), 300)


@glance_route(bp, "/versions", ["GET"], public=True)
def versions(principal: Principal | None, call: GlanceCall) -> dict[str, Any]:
    return documents.versions_document(_base_url(call))


@glance_route(bp, "/v2/schemas/{name}", ["GET"])
def schema(principal: Principal, call: GlanceCall, name: str) -> dict[str, Any]:
    from chalicelib.errors import NotFound

    if name not in SCHEMAS:
        raise NotFound(f"No schema named {name}")
    return SCHEMAS[name]()


@glance_route(bp, "/v2/info/import", ["GET"])
def import_info(principal: Principal, call: GlanceCall) -> dict[str, Any]:
    return documents.import_info_document(list(METHODS))
