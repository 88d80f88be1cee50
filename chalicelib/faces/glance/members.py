"""/v2/images/{id}/members: sharing an image with other tenants."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.auth import Principal
from chalicelib.container import container
from chalicelib.domain.glance import members
from chalicelib.faces.glance import views
from chalicelib.faces.glance.routing import GlanceCall, glance_route

bp = Blueprint(__name__)
MEMBERS = "/v2/images/{image_id}/members"


@glance_route(bp, MEMBERS, ["POST"])
def add_member(principal: Principal, call: GlanceCall, image_id: str) -> dict[str, Any]:
    return views.member(members.add(image_id, call.json(), principal, container().settings))


@glance_route(bp, MEMBERS, ["GET"])
def list_members(principal: Principal, call: GlanceCall, image_id: str) -> dict[str, Any]:
    return views.members(members.listed(image_id, principal))


@glance_route(bp, MEMBERS + "/{member_id}", ["GET"])
def show_member(
    principal: Principal, call: GlanceCall, image_id: str, member_id: str
) -> dict[str, Any]:
    return views.member(members.show(image_id, member_id, principal))


@glance_route(bp, MEMBERS + "/{member_id}", ["PUT"])
def update_member(
    principal: Principal, call: GlanceCall, image_id: str, member_id: str
) -> dict[str, Any]:
    return views.member(members.set_status(image_id, member_id, call.json(), principal))


@glance_route(bp, MEMBERS + "/{member_id}", ["DELETE"], status=204)
def delete_member(principal: Principal, call: GlanceCall, image_id: str, member_id: str) -> None:
    members.remove(image_id, member_id, principal)
