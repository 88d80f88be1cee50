"""Registers a Glance view: X-Auth-Token (or a bearer token) checked, JSON in and out, and
Glance's error bodies for every DomainError."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Response

from chalicelib import observability, safe_json
from chalicelib.auth import Principal, verify_bearer
from chalicelib.container import container
from chalicelib.errors import BadRequest, DomainError
from chalicelib.faces.glance.errors import render

View = Callable[..., Any]
#: every content type reaches the view, so a wrong one gets Glance's error, not the framework's
CONTENT_TYPES = ["*/*"]


@dataclasses.dataclass
class GlanceCall:
    """What a view may read of the request."""

    headers: dict[str, str]
    query: list[tuple[str, str]]
    raw_body: bytes

    @property
    def query_lists(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, value in self.query:
            out.setdefault(name, []).append(value)
        return out

    @property
    def media_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";")[0].strip().lower()

    def json(self) -> Any:
        if not self.raw_body:
            raise BadRequest("The request has no body; send a JSON document.")
        try:
            return safe_json.loads(self.raw_body)
        except safe_json.MalformedJSON as exc:
            raise BadRequest(f"Malformed JSON in request body: {exc}") from exc


def principal_of(headers: dict[str, str]) -> Principal:
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

    def register(view: View) -> View:
        @functools.wraps(view)
        def handle(**params: str) -> Response:
            request = bp.current_request
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                principal = None if public else principal_of(headers)
                call = GlanceCall(headers, _query(request), _raw(request))
                return respond(view(principal, call, **params), status)
            except DomainError as error:
                return render(error, headers.get("accept"))
            except Exception:  # never a bare stack trace
                observability.logger().exception("unhandled error")
                return render(DomainError("internal error"), headers.get("accept"))

        bp.route(path, methods=methods, content_types=CONTENT_TYPES)(handle)
        return view

    return register


def render_for(error: DomainError, request: Any) -> Response:
    """Glance's error body for an error raised outside a view (the framework's own answers)."""
    return render(error, (request.headers or {}).get("accept"))


def _query(request: Any) -> list[tuple[str, str]]:
    found = request.query_params
    if not found:
        return []
    return [(name, value) for name in found for value in found.getlist(name)]


def _raw(request: Any) -> bytes:
    if request.method not in ("POST", "PATCH", "PUT"):
        return b""
    return bytes(request.raw_body or b"")
