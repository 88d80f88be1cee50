"""IMS service endpoints: healthz (no auth), version, and the build nodes Kiln's hosts register."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.adapters.models import BuildNodeModel
from chalicelib.adapters.records import find
from chalicelib.auth import Principal
from chalicelib.container import container
from chalicelib.domain import build_nodes
from chalicelib.errors import NotFound
from chalicelib.faces.ims import views
from chalicelib.faces.ims.routing import V3_AND_LEGACY, ims_route

bp = Blueprint(__name__)


@ims_route(bp, "/healthz/ready", ["GET"], prefixes=["/apis/ims"], public=True)
def healthz_ready(_principal: None, _body: Any) -> dict[str, Any]:
    return {}


@ims_route(bp, "/healthz/live", ["GET"], prefixes=["/apis/ims"], public=True)
def healthz_live(_principal: None, _body: Any) -> dict[str, Any]:
    return {}


@ims_route(bp, "/version", ["GET"], prefixes=["/apis/ims"])
def version(_principal: Principal, _body: Any) -> str:
    return container().settings.ims_version


@ims_route(bp, "/remote-build-nodes", ["GET"], prefixes=V3_AND_LEGACY)
def list_build_nodes(principal: Principal, _body: Any) -> list[dict[str, Any]]:
    principal.require_role("admin")
    return [views.build_node(n) for n in build_nodes.all_nodes()]


@ims_route(bp, "/remote-build-nodes/{xname}", ["GET"], prefixes=V3_AND_LEGACY)
def get_build_node(principal: Principal, _body: Any, xname: str) -> dict[str, Any]:
    principal.require_role("admin")
    node = find(BuildNodeModel, xname)
    if node is None:
        raise NotFound(f"remote build node {xname} not found")
    return views.build_node(node)
