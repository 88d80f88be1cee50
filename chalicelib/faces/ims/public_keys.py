"""IMS public keys: /public-keys."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.auth import Principal
from chalicelib.domain.ims import public_keys
from chalicelib.domain.ims.lifecycle import PUBLIC_KEY
from chalicelib.faces.ims import views
from chalicelib.faces.ims.lifecycle_routes import add_lifecycle_routes
from chalicelib.faces.ims.routing import ims_route

bp = Blueprint(__name__)
add_lifecycle_routes(bp, "public-keys", "public_key_id", PUBLIC_KEY, views.public_key)


@ims_route(bp, "/public-keys", ["GET"])
def list_public_keys(principal: Principal, _body: Any) -> list[dict[str, Any]]:
    return [views.public_key(k) for k in public_keys.list_for(principal)]


@ims_route(bp, "/public-keys", ["POST"], status=201)
def create_public_key(principal: Principal, body: Any) -> dict[str, Any]:
    return views.public_key(public_keys.create(principal, body))


@ims_route(bp, "/public-keys/{public_key_id}", ["GET"])
def get_public_key(principal: Principal, _body: Any, public_key_id: str) -> dict[str, Any]:
    return views.public_key(public_keys.get(principal, public_key_id))
