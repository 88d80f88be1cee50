"""Registers an IMS view under every prefix IMS serves, with auth and ProblemDetails errors: the
IMS configuration of the shared route plumbing in faces/routing_core.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from chalice import Blueprint, Response
from chalice.app import Request

from chalicelib.errors import DomainError, Invalid, NoInput
from chalicelib.faces import routing_core
from chalicelib.faces.ims.errors import problem
from chalicelib.faces.routing_core import BODY_METHODS, JsonBodies, View, ViewArguments

V3 = "/apis/ims/v3"
#: the unversioned legacy API (its DELETEs are hard deletes), and its upstream spelling /v2
LEGACY = ("/apis/ims", "/apis/ims/v2")
ALL_PREFIXES = (V3, *LEGACY)
V3_AND_LEGACY = (V3, "/apis/ims")
Query = dict[str, list[str]]

_BODIES = JsonBodies(NoInput, malformed="the request body is not valid JSON: {reason}")


def ims_route(
    bp: Blueprint,
    suffix: str,
    methods: list[str],
    prefixes: Iterable[str] = ALL_PREFIXES,
    status: int = 200,
    public: bool = False,
    query: bool = False,
) -> Callable[[View], View]:
    """``view(principal, body, **path_params)`` returns a JSON-able body or a Response.
    With ``query``, the view also gets ``query``: each query parameter's values."""
    paths = [prefix + suffix for prefix in prefixes]
    inputs = _body_and_query if query else _body
    return routing_core.route(
        IMS_FACE, bp, paths, methods, status=status, public=public, inputs=inputs
    )


def render_for(error: DomainError, request: Any) -> Response:
    """ProblemDetails for an error raised outside a view (the framework's own answers)."""
    return IMS_FACE.render_for(error, request)


def flag(query: Query, name: str, default: bool) -> bool:
    """A boolean query parameter, as IMS reads one ('true'/'false', any case)."""
    values = query.get(name)
    if not values:
        return default
    value = values[-1].strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise Invalid(f"query parameter {name} must be true or false, not '{values[-1]}'")
    return value in ("true", "1", "yes")


def _instance(request: Request) -> str:
    """The path as requested (request.path is the route template, e.g. /jobs/{job_id})."""
    return str((request.context or {}).get("path") or request.path)


def _read_body(request: Request) -> Any:
    if request.method not in BODY_METHODS:
        return None
    return _BODIES.parse(request.raw_body)


def _body(request: Request) -> ViewArguments:
    return ViewArguments((_read_body(request),))


def _body_and_query(request: Request) -> ViewArguments:
    query = routing_core.grouped(routing_core.query_pairs(request))
    return ViewArguments((_read_body(request),), {"query": query})


def _respond(result: Any, status: int) -> Response:
    if status == 204:
        return Response(body="", status_code=204)
    if isinstance(result, str):
        result = json.dumps(result)
    return Response(body=result, status_code=status, headers={"Content-Type": "application/json"})


IMS_FACE: routing_core.Face[str] = routing_core.Face(
    name="ims",
    path_prefix="/apis/ims",
    content_types=("application/json", "application/merge-patch+json"),
    principal_of=routing_core.bearer_principal,
    inputs=_body,
    respond=_respond,
    error_context=_instance,
    render=problem,
)
