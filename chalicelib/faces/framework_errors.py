"""The answers Chalice gives itself — 405 for a method a path lacks, 415 for a content type a
route does not take, 400 for a body it cannot read — rendered in the error format of the face
that owns the path, as that API's clients expect, instead of Chalice's ``{"Code", "Message"}``.
Registered as HTTP middleware in app.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice import Response

from chalicelib.errors import (
    BadRequest,
    DomainError,
    MethodNotAllowed,
    UnsupportedMediaType,
)
from chalicelib.faces.composer.errors import PREFIX as COMPOSER_PREFIX
from chalicelib.faces.composer.routing import render_for as composer_render
from chalicelib.faces.glance.routing import render_for as glance_render
from chalicelib.faces.ims.routing import render_for as ims_render

Renderer = Callable[[DomainError, Any], Response]
#: path prefix -> the face's renderer; the first match wins (Glance serves the root)
FACES: tuple[tuple[str, Renderer], ...] = (
    ("/apis/ims", ims_render),
    (COMPOSER_PREFIX, composer_render),
    ("/", glance_render),
)
_ERRORS: dict[str, type[DomainError]] = {
    "MethodNotAllowedError": MethodNotAllowed,
    "UnsupportedMediaType": UnsupportedMediaType,
    "BadRequestError": BadRequest,
    "BadRequest": BadRequest,  # e.g. binary content for a request whose Accept takes none
}
_KEPT_HEADERS = ("Allow",)


def middleware(request: Any, get_response: Callable[[Any], Response]) -> Response:
    response = get_response(request)
    body = response.body
    if not (isinstance(body, dict) and set(body) == {"Code", "Message"}):
        return response
    error_class = _ERRORS.get(str(body["Code"]), DomainError)
    error = error_class(_detail(error_class, str(body["Message"]), str(request.method)))
    rendered = renderer_for(str(request.path))(error, request)
    for name in _KEPT_HEADERS:
        if name in (response.headers or {}):
            rendered.headers[name] = response.headers[name]
    return rendered


def renderer_for(path: str) -> Renderer:
    return next(render for prefix, render in FACES if path.startswith(prefix))


def _detail(error_class: type[DomainError], message: str, method: str) -> str:
    if error_class is MethodNotAllowed:
        return f"The method {method} is not allowed for this resource."
    if error_class is DomainError:
        return "An internal error occurred."
    return message
