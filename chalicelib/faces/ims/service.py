"""IMS service endpoints: healthz (no auth) and version."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.auth import Principal
from chalicelib.container import container
from chalicelib.faces.ims.routing import ims_route

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
