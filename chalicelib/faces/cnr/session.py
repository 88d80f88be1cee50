"""App registry (CNR) face, the session routes (omps-behaviour.md §14): ``GET /cnr/version``
(what OMPS's health check calls, anonymously) and ``POST /cnr/api/v1/users/login``, which
trades a robot's user name and password (``omps_robots``) for its ``basic`` registry token."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib import safe_json
from chalicelib.container import container
from chalicelib.domain.appregistry import callers
from chalicelib.faces.cnr.routing import CnrCall, cnr_route

bp = Blueprint(__name__)


@cnr_route(bp, "/version", ["GET"])
def version(_principal: None, _call: CnrCall) -> dict[str, str]:
    return {"cnr-api": container().settings.omps_cnr_api_version}


@cnr_route(bp, "/api/v1/users/login", ["POST"])
def login(_principal: None, call: CnrCall) -> dict[str, str]:
    """``{"user": {"username", "password"}}`` -> ``{"token": "basic <base64(user:pass)>"}``.
    As Quay's, a body it cannot read counts as one without credentials."""
    user = _body(call.raw_body).get("user")
    credentials: dict[str, Any] = user if isinstance(user, dict) else {}
    username, password = credentials.get("username"), credentials.get("password")
    token = callers.login(
        username if isinstance(username, str) else "",
        password if isinstance(password, str) else "",
        container().settings,
    )
    return {"token": token}


def _body(raw: bytes) -> dict[str, Any]:
    try:
        found = safe_json.loads(raw) if raw.strip() else {}
    except safe_json.MalformedJSON:
        return {}
    return found if isinstance(found, dict) else {}
