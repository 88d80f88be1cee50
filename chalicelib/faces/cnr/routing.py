"""Registers a view of Kiln's app registry, Quay's appregistry (CNR) API (omps-behaviour.md
§14), under ``/cnr``: the caller from its Authorization header (Kiln token or robot ``basic``
token, or anonymous), and every error as ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Response
from chalice.app import Request

from chalicelib import safe_json
from chalicelib.container import container
from chalicelib.domain.appregistry.callers import Caller, caller_from
from chalicelib.domain.appregistry.errors import InvalidUsage, RegistryError
from chalicelib.errors import DomainError
from chalicelib.faces import routing_core
from chalicelib.faces.routing_core import View, ViewArguments

PREFIX = "/cnr"
JSON_TYPE = "application/json"
#: the code of an error that is not the registry's own, by status
CODES = {
    400: "invalid-usage",
    401: "unauthorized-access",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "request-too-large",
    415: "unsupported-media-type",
}


@dataclasses.dataclass
class CnrCall:
    """What a view may read of the request: its caller, query and body."""

    caller: Caller
    query: dict[str, list[str]]
    raw_body: bytes

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def json(self) -> Any:
        if not self.raw_body.strip():
            raise InvalidUsage("Missing request body")
        try:
            return safe_json.loads(self.raw_body)
        except safe_json.MalformedJSON as exc:
            raise InvalidUsage(f"Invalid JSON body: {exc}") from None


def error_body(error: DomainError) -> tuple[int, dict[str, Any]]:
    if isinstance(error, RegistryError):
        return error.status, error.body()
    code = CODES.get(error.status, "internal-error")
    return error.status, {"error": {"code": code, "message": error.detail, "details": {}}}


def render(error: DomainError, _context: object = None) -> Response:
    status, body = error_body(error)
    return Response(body=json.dumps(body), status_code=status, headers={"Content-Type": JSON_TYPE})


def respond(result: Any, status: int) -> Response:
    return Response(
        body=json.dumps(result), status_code=status, headers={"Content-Type": JSON_TYPE}
    )


def cnr_route(
    bp: Blueprint, path: str, methods: list[str], status: int = 200
) -> Callable[[View], View]:
    """``view(None, call, **path_params)``; ``path`` is under ``/cnr``."""
    return routing_core.route(CNR_FACE, bp, [PREFIX + path], methods, status=status, public=True)


def _call(request: Request) -> ViewArguments:
    headers = routing_core.lower_headers(request)
    body = routing_core.raw_body(request)
    caller = caller_from(headers.get("authorization"), container().settings)
    query = routing_core.grouped(routing_core.query_pairs(request))
    return ViewArguments((CnrCall(caller, query, body),))


CNR_FACE: routing_core.Face[None] = routing_core.Face(
    name="cnr",
    path_prefix=PREFIX + "/",
    content_types=("*/*",),
    principal_of=routing_core.caller_read_by_views,
    inputs=_call,
    respond=respond,
    error_context=routing_core.no_context,
    render=render,
)
