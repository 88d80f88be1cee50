"""Registers an IMS view under every prefix IMS serves, with auth and ProblemDetails errors."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from typing import Any

from chalice import Blueprint, Response

from chalicelib import observability, safe_json
from chalicelib.auth import Principal, verify_bearer
from chalicelib.container import container
from chalicelib.errors import DomainError, Invalid, NoInput
from chalicelib.faces.ims.errors import problem

V3 = "/apis/ims/v3"
#: the unversioned legacy API (its DELETEs are hard deletes), and its upstream spelling /v2
LEGACY = ("/apis/ims", "/apis/ims/v2")
ALL_PREFIXES = (V3, *LEGACY)
V3_AND_LEGACY = (V3, "/apis/ims")
Query = dict[str, list[str]]

View = Callable[..., Any]


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

    def register(view: View) -> View:
        @functools.wraps(view)
        def handle(**params: str) -> Response:
            request = bp.current_request
            try:
                principal = None if public else _principal(request)
                extra: dict[str, Any] = {"query": _query(request)} if query else {}
                result = view(principal, _body(request), **params, **extra)
            except DomainError as error:
                return problem(error, _instance(request))
            except Exception:  # never a bare stack trace: IMS clients get ProblemDetails
                observability.logger().exception("unhandled error")
                return problem(DomainError("An internal error occurred."), _instance(request))
            if isinstance(result, Response):
                return result
            if status == 204:
                return Response(body="", status_code=204)
            if isinstance(result, str):
                result = json.dumps(result)
            return Response(
                body=result, status_code=status, headers={"Content-Type": "application/json"}
            )

        for prefix in prefixes:
            bp.route(prefix + suffix, methods=methods, content_types=_CONTENT_TYPES)(handle)
        return view

    return register


_CONTENT_TYPES = ["application/json", "application/merge-patch+json"]


def render_for(error: DomainError, request: Any) -> Response:
    """ProblemDetails for an error raised outside a view (the framework's own answers)."""
    return problem(error, _instance(request))


def _instance(request: Any) -> str:
    """The path as requested (request.path is the route template, e.g. /jobs/{job_id})."""
    return str((request.context or {}).get("path") or request.path)


def _query(request: Any) -> Query:
    found = request.query_params
    if not found:
        return {}
    return {name: list(found.getlist(name)) for name in found}


def flag(query: Query, name: str, default: bool) -> bool:
    """A boolean query parameter, as IMS reads one ('true'/'false', any case)."""
    values = query.get(name)
    if not values:
        return default
    value = values[-1].strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise Invalid(f"query parameter {name} must be true or false, not '{values[-1]}'")
    return value in ("true", "1", "yes")


def _principal(request: Any) -> Principal:
    return verify_bearer(request.headers.get("authorization"), container().settings)


def _body(request: Any) -> Any:
    if request.method not in ("POST", "PATCH", "PUT"):
        return None
    if not request.raw_body:
        return None
    try:
        return safe_json.loads(request.raw_body)
    except safe_json.MalformedJSON as exc:
        raise NoInput(f"the request body is not valid JSON: {exc}") from exc
