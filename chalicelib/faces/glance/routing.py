"""Registers a Glance view: X-Auth-Token (or a bearer token) checked, JSON in and out, and
Glance's error bodies for every DomainError — the Glance configuration of the shared route
plumbing in faces/routing_core.py."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

from chalice import Blueprint, Response
from chalice.app import Request

from chalicelib.auth import Principal, verify_bearer
from chalicelib.container import container
from chalicelib.errors import BadRequest, DomainError
from chalicelib.faces import routing_core
from chalicelib.faces.glance.errors import render
from chalicelib.faces.routing_core import BODY_METHODS, JsonBodies, View, ViewArguments

_BODIES = JsonBodies(
    BadRequest,
    malformed="Malformed JSON in request body: {reason}",
    missing="The request has no body; send a JSON document.",
)


@dataclasses.dataclass
class GlanceCall:
    """What a view may read of the request."""

    headers: dict[str, str]
    query: list[tuple[str, str]]
    raw_body: bytes

    @property
    def query_lists(self) -> dict[str, list[str]]:
        return routing_core.grouped(self.query)

    @property
    def media_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";")[0].strip().lower()

    def json(self) -> Any:
        return _BODIES.parse(self.raw_body)


def principal_of(headers: Mapping[str, str]) -> Principal:
    """OpenStack clients send the token as X-Auth-Token; a bearer header works as well."""
    token = headers.get("x-auth-token")
    header = f"Bearer {token}" if token else headers.get("authorization")
    return verify_bearer(header, container().settings)


def respond(result: Any, status: int) -> Response:
    if isinstance(result, Response):
        return result
    if status == 204 or result is None:  # no body, and no JSON type a client would parse
        return Response(body="", status_code=status, headers={"Content-Type": "text/plain"})
    return Response(
        body=json.dumps(result),
        status_code=status,
        headers={"Content-Type": "application/json; charset=UTF-8"},
    )


def glance_route(
    bp: Blueprint, path: str, methods: list[str], status: int = 200, public: bool = False
) -> Callable[[View], View]:
    """``view(principal, call, **path_params)`` returns a JSON-able body or a Response."""
    return routing_core.route(GLANCE_FACE, bp, [path], methods, status=status, public=public)


def render_for(error: DomainError, request: Any) -> Response:
    """Glance's error body for an error raised outside a view (the framework's own answers)."""
    return GLANCE_FACE.render_for(error, request)


def _principal(request: Request) -> Principal:
    return principal_of(request.headers)


def _accept(request: Request) -> str | None:
    return request.headers.get("accept")


def _call(request: Request) -> ViewArguments:
    headers = {k.lower(): v for k, v in request.headers.items()}
    return ViewArguments((GlanceCall(headers, routing_core.query_pairs(request), _raw(request)),))


def _raw(request: Request) -> bytes:
    if request.method not in BODY_METHODS:
        return b""
    raw = request.raw_body or b""
    return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)


GLANCE_FACE: routing_core.Face[str | None] = routing_core.Face(
    name="glance",
    path_prefix="/",  # Glance serves the root: it owns every path no other face does
    # every content type reaches the view, so a wrong one gets Glance's error, not the framework's
    content_types=("*/*",),
    principal_of=_principal,
    inputs=_call,
    respond=respond,
    error_context=_accept,
    render=render,
)
