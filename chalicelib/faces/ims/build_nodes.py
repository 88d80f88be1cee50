"""IMS remote build nodes (admin only): register, list, drain (v3 and unversioned), and their
status (v3 only, as upstream IMS serves it)."""

from __future__ import annotations

import time
from typing import Any

from chalice import Blueprint

from chalicelib.auth import Principal
from chalicelib.container import container
from chalicelib.domain.builds import nodes as build_nodes
from chalicelib.faces.ims import views
from chalicelib.faces.ims.routing import V3, V3_AND_LEGACY, ims_route

bp = Blueprint(__name__)
NODES = "/remote-build-nodes"
NODE = NODES + "/{xname}"
#: registered before NODE's routes, so that /v3/remote-build-nodes/status is not node 'status'
#: (Chalice's local matcher takes the first route that fits; API Gateway the static segment).
#: Unversioned, that path stays the node-by-xname route (a 404), as upstream.
STATUSES = NODES + "/status"
STATUS = STATUSES + "/{xname}"


def _show(node: Any) -> dict[str, Any]:
    return views.build_node(node, container().settings.node_fresh_seconds)


def _status(node: Any) -> dict[str, Any]:
    return views.build_node_status(node, container().settings.node_fresh_seconds, time.time())


@ims_route(bp, STATUSES, ["GET"], prefixes=(V3,))
def list_build_node_statuses(principal: Principal, _body: Any) -> list[dict[str, Any]]:
    return [_status(n) for n in build_nodes.list_for(principal)]


@ims_route(bp, STATUS, ["GET"], prefixes=(V3,))
def get_build_node_status(principal: Principal, _body: Any, xname: str) -> dict[str, Any]:
    return _status(build_nodes.get(principal, xname))


@ims_route(bp, NODES, ["GET"], prefixes=V3_AND_LEGACY)
def list_build_nodes(principal: Principal, _body: Any) -> list[dict[str, Any]]:
    return [_show(n) for n in build_nodes.list_for(principal)]


@ims_route(bp, NODES, ["POST"], prefixes=V3_AND_LEGACY, status=201)
def register_build_node(principal: Principal, body: Any) -> dict[str, Any]:
    return _show(build_nodes.register(principal, body, container().artifacts))


@ims_route(bp, NODES, ["DELETE"], prefixes=V3_AND_LEGACY, status=204)
def drain_all_build_nodes(principal: Principal, _body: Any) -> None:
    build_nodes.deregister_all(principal, container().artifacts)


@ims_route(bp, NODE, ["GET"], prefixes=V3_AND_LEGACY)
def get_build_node(principal: Principal, _body: Any, xname: str) -> dict[str, Any]:
    return _show(build_nodes.get(principal, xname))


@ims_route(bp, NODE, ["DELETE"], prefixes=V3_AND_LEGACY, status=204)
def drain_build_node(principal: Principal, _body: Any, xname: str) -> None:
    build_nodes.deregister(principal, xname, container().artifacts)
