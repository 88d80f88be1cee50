"""IMS renders every DomainError as RFC 7807 ProblemDetails."""

from __future__ import annotations

from chalice import Response

from chalicelib.errors import DomainError


def problem(error: DomainError, instance: str) -> Response:
    body: dict[str, object] = {
        "type": "about:blank",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "instance": instance,
    }
    if error.errors:
        body["errors"] = error.errors
    headers: dict[str, str | list[str]] = {"Content-Type": "application/problem+json"}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="kiln"'
    return Response(body=body, status_code=error.status, headers=headers)
