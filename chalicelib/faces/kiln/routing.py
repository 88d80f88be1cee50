"""Registers a Kiln view with JSON answers and problem-details errors
(``{"type", "title", "status", "detail"}``, application/problem+json): the Kiln configuration
of the shared route plumbing in faces/routing_core.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Response

from chalicelib.errors import DomainError
from chalicelib.faces import routing_core
from chalicelib.faces.routing_core import View, ViewArguments

PREFIX = "/kiln/v1"
JSON_TYPE = "application/json"


def respond(result: Any, status: int) -> Response:
    return Response(
        body=json.dumps(result), status_code=status, headers={"Content-Type": JSON_TYPE}
    )


def render(error: DomainError, _context: object = None) -> Response:
    body = {
        "type": "about:blank",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    return Response(
        body=json.dumps(body),
        status_code=error.status,
        headers={"Content-Type": "application/problem+json"},
    )


def _no_inputs(_request: Any) -> ViewArguments:
    return ViewArguments(())


def _query(request: Any) -> ViewArguments:
    """The query string, each name's last value: ``view(principal, query, **path_params)``."""
    return ViewArguments((dict(routing_core.query_pairs(request)),))


KILN_FACE: routing_core.Face[None] = routing_core.Face(
    name="kiln",
    path_prefix=PREFIX + "/",
    content_types=("*/*",),
    principal_of=routing_core.bearer_principal,
    inputs=_no_inputs,
    respond=respond,
    error_context=routing_core.no_context,
    render=render,
)


def kiln_route(
    bp: Blueprint,
    path: str,
    methods: list[str],
    public: bool = False,
    query: bool = False,
    status: int = 200,
) -> Callable[[View], View]:
    """``view(principal, **path_params)`` under ``/kiln/v1``; a public one gets None; with
    ``query``, ``view(principal, query, **path_params)``."""
    inputs = _query if query else None
    return routing_core.route(
        KILN_FACE, bp, [PREFIX + path], methods, public=public, inputs=inputs, status=status
    )
