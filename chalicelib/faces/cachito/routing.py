"""Registers a Cachito view with bearer auth, raw JSON bodies and Cachito's error bodies: the
Cachito configuration of the shared route plumbing in faces/routing_core.py.

Errors are ``{"error": "<message>"}`` with upstream's texts; every 404 says ``The requested
resource was not found`` and every 401 gives upstream's (Werkzeug's) text. The one other
shape is ``{"errors": {field: message}}`` for unparseable ``created_from``/``created_to``."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

from chalice import Blueprint, Response
from chalice.app import Request

from chalicelib import safe_json
from chalicelib.auth import Principal, verify_bearer
from chalicelib.container import container
from chalicelib.domain.cachito.schema import FieldErrors
from chalicelib.domain.cachito.submission import ANONYMOUS
from chalicelib.errors import BadRequest, DomainError
from chalicelib.faces import routing_core
from chalicelib.faces.routing_core import View, ViewArguments

PREFIX = "/api/v1"
NOT_FOUND = "The requested resource was not found"
UNAUTHORIZED = (
    "The server could not verify that you are authorized to access the URL requested. You "
    "either supplied the wrong credentials (e.g. a bad password), or your browser doesn't "
    "understand how to supply the credentials required."
)
NOT_JSON = "Request body is not valid JSON"
JSON_TYPE = "application/json"


@dataclasses.dataclass
class CachitoCall:
    """What a view may read of the request."""

    headers: dict[str, str]  # names lower-case
    query: list[tuple[str, str]]
    raw_body: bytes

    @property
    def base_url(self) -> str:
        """The scheme and host the client called, for the absolute URLs Cachito answers."""
        scheme = self.headers.get("x-forwarded-proto", "http").split(",")[0].strip()
        return f"{scheme}://{self.headers.get('host', 'localhost')}"

    def json(self) -> Any:
        """The body as JSON; an empty body is null (the schema then says what it must be)."""
        if not self.raw_body.strip():
            return None
        try:
            return safe_json.loads(self.raw_body)
        except safe_json.MalformedJSON:
            raise BadRequest(NOT_JSON) from None


def error_body(error: DomainError) -> tuple[int, dict[str, Any]]:
    """The status and body of an error, as upstream's error handler shapes them."""
    if error.status == 404:
        return 404, {"error": NOT_FOUND}
    if error.status == 401:
        return 401, {"error": UNAUTHORIZED}
    if isinstance(error, FieldErrors) and error.errors:
        return 400, {"errors": error.errors}
    return error.status, {"error": error.detail}


def render(error: DomainError, _context: object = None) -> Response:
    status, body = error_body(error)
    headers: dict[str, str | list[str]] = {"Content-Type": JSON_TYPE}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="kiln"'
    return Response(body=json.dumps(body), status_code=status, headers=headers)


def respond(result: Any, status: int) -> Response:
    """A JSON body (keys sorted, as Flask's jsonify), or an empty one for None."""
    if result is None:
        return Response(body="", status_code=status, headers={"Content-Type": "text/plain"})
    return Response(
        body=json.dumps(result, sort_keys=True),
        status_code=status,
        headers={"Content-Type": JSON_TYPE},
    )


def cachito_route(
    bp: Blueprint,
    path: str,
    methods: list[str],
    status: int = 200,
    public: bool = False,
    root: bool = False,
) -> Callable[[View], View]:
    """``view(principal, call, **path_params)`` returns a JSON-able body, None (an empty
    body) or a Response; ``path`` is under ``/api/v1`` (``root``: under ``/``)."""
    full = path if root else PREFIX + path
    return routing_core.route(CACHITO_FACE, bp, [full], methods, status=status, public=public)


def render_for(error: DomainError, request: Any) -> Response:
    """Cachito's error body for an error raised outside a view (the framework's own)."""
    return CACHITO_FACE.render_for(error, request)


def _call(request: Request) -> ViewArguments:
    headers = routing_core.lower_headers(request)
    body = routing_core.raw_body(request)
    return ViewArguments((CachitoCall(headers, routing_core.query_pairs(request), body),))


def principal_from(headers: Mapping[str, str]) -> Principal:
    """The caller: its bearer token's principal; with no Authorization header and
    ``cachito_anonymous_tenant`` set (upstream's login disabled), an anonymous user of that
    tenant."""
    settings = container().settings
    header = headers.get("authorization")
    if not header and settings.cachito_anonymous_tenant:
        return Principal(ANONYMOUS, settings.cachito_anonymous_tenant, "user")
    return verify_bearer(header, settings)


def _principal(request: Request) -> Principal:
    return principal_from({k.lower(): v for k, v in request.headers.items()})


CACHITO_FACE: routing_core.Face[None] = routing_core.Face(
    name="cachito",
    path_prefix=PREFIX + "/",
    # every content type reaches the view: the body is read as JSON whatever it is labelled
    content_types=("*/*",),
    principal_of=_principal,
    inputs=_call,
    respond=respond,
    error_context=routing_core.no_context,
    render=render,
)
