"""Registers a composer view with bearer auth, JSON bodies and registry errors."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Response

from chalicelib import observability, safe_json
from chalicelib.auth import Principal, verify_bearer
from chalicelib.container import container
from chalicelib.errors import DomainError, NoInput, UnsupportedMediaType
from chalicelib.faces.composer import errors
from chalicelib.faces.composer.errors import PREFIX

View = Callable[..., Any]
Query = dict[str, str]
#: every content type reaches the view, so a wrong one gets a registry error, not the framework's
CONTENT_TYPES = ["*/*"]
JSON: dict[str, str | list[str]] = {"Content-Type": "application/json"}


def composer_route(
    bp: Blueprint, suffix: str, methods: list[str], status: int = 200
) -> Callable[[View], View]:
    """``view(principal, request_body, query, **path_params)`` returns a JSON-able body."""

    def register(view: View) -> View:
        @functools.wraps(view)
        def handle(**params: str) -> Response:
            request = bp.current_request
            operation_id = _operation_id(request)
            observability.correlate(operation_id)
            try:
                principal = _principal(request)
                body = _body(request)
                query = {k: v for k, v in (request.query_params or {}).items()}
                result = view(principal, body, query, **params)
            except DomainError as error:
                return render_error(error, operation_id)
            except Exception:  # never a bare stack trace: clients get a registry error
                observability.logger().exception("unhandled error")
                return render_error(DomainError("an internal error occurred"), operation_id)
            return Response(body=json.dumps(result), status_code=status, headers=JSON)

        bp.route(PREFIX + suffix, methods=methods, content_types=CONTENT_TYPES)(handle)
        return view

    return register


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
    return render_error(error, _operation_id(request))


def _operation_id(request: Any) -> str:
    context = request.context or {}
    return str(context.get("requestId") or uuid.uuid4().hex)


def _principal(request: Any) -> Principal:
    return verify_bearer(request.headers.get("authorization"), container().settings)


def _body(request: Any) -> Any:
    if request.method != "POST":
        return None
    kind = (request.headers.get("content-type") or "application/json").split(";")[0].strip()
    if kind.lower() != "application/json":
        raise UnsupportedMediaType(f"send the body as application/json, not {kind}")
    if not request.raw_body:
        raise NoInput("the request has no body; send a JSON compose request")
    try:
        return safe_json.loads(request.raw_body)
    except safe_json.MalformedJSON as exc:
        raise NoInput(f"the body is not valid JSON: {exc}") from exc
