"""Registers an OMPS view (omps-behaviour.md): every route under ``/omps`` (``/omps/v1``,
``/omps/v2``), the request as the view reads it (headers, raw body, query), and every error as
OMPS's ``{"status", "error", "message"}`` plus the fields some errors add. The OMPS face is the
shared route plumbing of faces/routing_core.py configured for it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Response
from chalice.app import Request

from chalicelib.domain.omps.errors import OmpsError
from chalicelib.errors import DomainError
from chalicelib.faces import routing_core
from chalicelib.faces.routing_core import View, ViewArguments

PREFIX = "/omps"
JSON_TYPE = "application/json"
#: the standard texts of the errors Flask (upstream's framework) answers itself
STANDARD = {
    404: (
        "NotFound",
        "The requested URL was not found on the server. If you entered the URL manually please "
        "check your spelling and try again.",
    ),
    405: ("MethodNotAllowed", "The method is not allowed for the requested URL."),
    413: ("RequestEntityTooLarge", "The data value transmitted exceeds the capacity limit."),
    415: ("UnsupportedMediaType", "The server does not support the media type transmitted."),
}


@dataclasses.dataclass
class OmpsCall:
    """What a view may read of the request."""

    headers: dict[str, str]  # names lower-case
    raw_body: bytes
    query: list[tuple[str, str]]

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


def error_body(error: DomainError) -> tuple[int, dict[str, Any]]:
    if isinstance(error, OmpsError):
        body = {"status": error.status, "error": error.error_id, "message": error.detail}
        return error.status, {**body, **error.extra}
    if error.status in STANDARD:
        name, text = STANDARD[error.status]
        return error.status, {"status": error.status, "error": name, "message": text}
    if error.status < 500:
        name = type(error).__name__
        return error.status, {"status": error.status, "error": name, "message": error.detail}
    return 500, {"status": 500, "error": "InternalServerError", "message": error.detail}


def render(error: DomainError, _context: object = None) -> Response:
    status, body = error_body(error)
    return Response(body=json.dumps(body), status_code=status, headers={"Content-Type": JSON_TYPE})


def respond(result: Any, status: int) -> Response:
    return Response(
        body=json.dumps(result, sort_keys=True),
        status_code=status,
        headers={"Content-Type": JSON_TYPE},
    )


def omps_route(bp: Blueprint, paths: list[str], methods: list[str]) -> Callable[[View], View]:
    """``view(None, call, **path_params)``; ``paths`` are under ``/omps``. Routes are public to
    the plumbing: OMPS checks the Authorization header itself, in its own order (§3)."""
    full = [PREFIX + path for path in paths]
    return routing_core.route(OMPS_FACE, bp, full, methods, public=True)


def _call(request: Request) -> ViewArguments:
    headers = routing_core.lower_headers(request)
    body = routing_core.raw_body(request)
    return ViewArguments((OmpsCall(headers, body, routing_core.query_pairs(request)),))


OMPS_FACE: routing_core.Face[None] = routing_core.Face(
    name="omps",
    path_prefix=PREFIX + "/",
    content_types=("*/*",),
    principal_of=routing_core.caller_read_by_views,
    inputs=_call,
    respond=respond,
    error_context=routing_core.no_context,
    render=render,
)
