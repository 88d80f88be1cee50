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
from chalicelib.faces.cachito.routing import CACHITO_FACE
from chalicelib.faces.cnr.routing import CNR_FACE
from chalicelib.faces.composer.routing import COMPOSER_FACE
from chalicelib.faces.glance.routing import GLANCE_FACE
from chalicelib.faces.ims.routing import IMS_FACE
from chalicelib.faces.kiln.routing import KILN_FACE
from chalicelib.faces.omps.routing import OMPS_FACE
from chalicelib.faces.routing_core import INTERNAL_ERROR, Face

#: the faces in the order their path prefixes are tried; the first match wins (Glance: the root)
FACES: tuple[Face[Any], ...] = (
    IMS_FACE,
    COMPOSER_FACE,
    CACHITO_FACE,
    OMPS_FACE,
    CNR_FACE,
    KILN_FACE,
    GLANCE_FACE,
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
    rendered = face_for(str(request.path)).render_for(error, request)
    for name in _KEPT_HEADERS:
        if name in (response.headers or {}):
            rendered.headers[name] = response.headers[name]
    return rendered


def face_for(path: str) -> Face[Any]:
    """The face that owns a path."""
    return next(face for face in FACES if path.startswith(face.path_prefix))


def _detail(error_class: type[DomainError], message: str, method: str) -> str:
    if error_class is MethodNotAllowed:
        return f"The method {method} is not allowed for this resource."
    if error_class is DomainError:
        return INTERNAL_ERROR
    return message
