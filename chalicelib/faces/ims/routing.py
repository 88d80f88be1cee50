"""Registers an IMS view under every prefix IMS serves, with auth and ProblemDetails errors."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from typing import Any

from chalice import BadRequestError, Blueprint, Response

from chalicelib import observability
from chalicelib.auth import Principal, verify_bearer
from chalicelib.container import container
from chalicelib.errors import DomainError, NoInput
from chalicelib.faces.ims.errors import problem

V3 = "/apis/ims/v3"
#: v3, the unversioned legacy API, and its upstream spelling /v2
ALL_PREFIXES = (V3, "/apis/ims", "/apis/ims/v2")
V3_AND_LEGACY = (V3, "/apis/ims")

View = Callable[..., Any]


def ims_route(
    bp: Blueprint,
    suffix: str,
    methods: list[str],
    prefixes: Iterable[str] = ALL_PREFIXES,
    status: int = 200,
    public: bool = False,
) -> Callable[[View], View]:
    """``view(principal, body, **path_params)`` returns a JSON-able body or a Response."""

    def register(view: View) -> View:
        @functools.wraps(view)
        def handle(**params: str) -> Response:
            request = bp.current_request
            try:
                principal = None if public else _principal(request)
                result = view(principal, _body(request), **params)
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


def _instance(request: Any) -> str:
    """The path as requested (request.path is the route template, e.g. /jobs/{job_id})."""
    return str((request.context or {}).get("path") or request.path)


def _principal(request: Any) -> Principal:
    return verify_bearer(request.headers.get("authorization"), container().settings)


def _body(request: Any) -> Any:
    if request.method not in ("POST", "PATCH", "PUT"):
        return None
    if not request.raw_body:
        return None
    try:
        return request.json_body
    except BadRequestError as exc:
        raise NoInput(f"the request body is not valid JSON: {exc}") from exc
