"""Errors as Glance answers them: webob's JSON body ``{"message", "code", "title"}`` when the
client accepts JSON, else webob's plain text; Glance's status codes for the domain's errors."""

from __future__ import annotations

import json
from http import HTTPStatus

from chalice import Response

from chalicelib.errors import DomainError, Invalid, NoInput, UnsupportedMediaType

#: the patch media types Glance takes (named in Accept-Patch when another one is sent)
PATCH_TYPES = (
    "application/openstack-images-v2.0-json-patch",
    "application/openstack-images-v2.1-json-patch",
)


def status_of(error: DomainError) -> int:
    """Glance has no 422: what the domain calls invalid is a 400 here."""
    if isinstance(error, Invalid | NoInput):
        return 400
    return error.status


def titled(status: int) -> tuple[str, str]:
    """('404 Not Found', 'Not Found')."""
    phrase = HTTPStatus(status).phrase
    if status == 413:
        phrase = "Request Entity Too Large"  # webob's wording
    if status == 416:
        phrase = "Requested Range Not Satisfiable"
    return f"{status} {phrase}", phrase


def render(error: DomainError, accept: str | None) -> Response:
    status = status_of(error)
    message = error.detail if status < 500 else "An internal error occurred."
    code, title = titled(status)
    headers: dict[str, str | list[str]] = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Keystone uri="local"'
    if isinstance(error, UnsupportedMediaType):
        headers["Accept-Patch"] = ", ".join(PATCH_TYPES)
    if "json" in (accept or "").lower():
        headers["Content-Type"] = "application/json"
        body = json.dumps({"message": message, "code": code, "title": title})
    else:
        headers["Content-Type"] = "text/plain; charset=UTF-8"
        body = f"{code}\n\n{message}\n\n   "
    return Response(body=body, status_code=status, headers=headers)
