"""Registers a composer view with bearer auth, JSON bodies and registry errors: the composer
configuration of the shared route plumbing in faces/routing_core.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Response
from chalice.app import Request

from chalicelib import observability
from chalicelib.errors import DomainError, NoInput, UnsupportedMediaType
from chalicelib.faces import routing_core
from chalicelib.faces.composer import errors
from chalicelib.faces.composer.errors import PREFIX
from chalicelib.faces.routing_core import JsonBodies, View, ViewArguments

Query = dict[str, str]
JSON: dict[str, str | list[str]] = {"Content-Type": "application/json"}

_BODIES = JsonBodies(
    NoInput,
    malformed="the body is not valid JSON: {reason}",
    missing="the request has no body; send a JSON compose request",
)


def composer_route(
    bp: Blueprint, suffix: str, methods: list[str], status: int = 200
) -> Callable[[View], View]:
    """``view(principal, request_body, query, **path_params)`` returns a JSON-able body."""
    return routing_core.route(COMPOSER_FACE, bp, [PREFIX + suffix], methods, status=status)


def render_error(error: DomainError, operation_id: str) -> Response:
    entry = errors.entry_for(error)
    headers: dict[str, str | list[str]] = dict(JSON)
    if entry.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="kiln"'
    details = error.detail if entry.status < 500 else None
    return Response(
        body=json.dumps(errors.body(entry, operation_id, details)),
        status_code=entry.status,
        headers=headers,
    )


def render_for(error: DomainError, request: Any) -> Response:
    """A registry error for an error raised outside a view (the framework's own answers)."""
    return COMPOSER_FACE.render_for(error, request)


def _operation_id(request: Request) -> str:
    context = request.context or {}
    return str(context.get("requestId") or uuid.uuid4().hex)


def _inputs(request: Request) -> ViewArguments:
    body = _body(request)
    query: Query = dict(routing_core.query_pairs(request))  # a repeated name: its last value
    return ViewArguments((body, query))


def _body(request: Request) -> Any:
    if request.method != "POST":
        return None
    kind = (request.headers.get("content-type") or "application/json").split(";")[0].strip()
    if kind.lower() != "application/json":
        raise UnsupportedMediaType(f"send the body as application/json, not {kind}")
    return _BODIES.parse(request.raw_body)


def _respond(result: Any, status: int) -> Response:
    return Response(body=json.dumps(result), status_code=status, headers=dict(JSON))


COMPOSER_FACE: routing_core.Face[str] = routing_core.Face(
    name="composer",
    path_prefix=PREFIX,
    # every content type reaches the view: a wrong one gets a registry error, not the framework's
    content_types=("*/*",),
    principal_of=routing_core.bearer_principal,
    inputs=_inputs,
    respond=_respond,
    error_context=_operation_id,
    render=render_error,
    start=observability.correlate,  # every log line of the call carries the operation id
)
