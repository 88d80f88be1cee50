"""The one route plumbing every API face shares: authenticate the caller, read what the view
takes from the request (the JSON body through safe_json, the query), call the view, build the
Response, and answer every DomainError — and any unexpected exception, logged, never a stack
trace — in the face's own error format.

What differs between faces is a ``Face``, configured once in each face's ``routing.py``:

- ``path_prefix``: the paths it owns (the framework's own 405/415/400 under them are rendered
  in its format by ``framework_errors``);
- ``content_types``: the request content types its routes accept (``*/*`` lets a wrong one
  reach the view, so the face answers it, not the framework);
- ``principal_of``: how it finds the caller (a bearer token, or Glance's X-Auth-Token);
- ``inputs``: what the view gets after the principal (body, query, ... as the face reads them);
- ``respond``: how a view's result that is not already a Response becomes one;
- ``error_context`` and ``render``: what of the request an error body quotes (IMS: the path,
  composer: the operation id, Glance: the Accept header), read once per call, and the error
  body itself; ``render_for`` puts the two together for errors raised outside a view;
- ``start``: what the face does first with that context (composer: log lines carry the id).
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

from chalice import Blueprint, Response
from chalice.app import Request

from chalicelib import observability, safe_json
from chalicelib.auth import Principal, verify_bearer
from chalicelib.container import container
from chalicelib.errors import DomainError

View = Callable[..., Any]
#: what an error body quotes of the request (a path, an operation id, an Accept header)
Context = TypeVar("Context")
#: the methods whose requests carry a body the faces read
BODY_METHODS = ("POST", "PATCH", "PUT")
#: the detail of the error an unexpected exception is answered with
INTERNAL_ERROR = "An internal error occurred."


class ViewArguments(NamedTuple):
    """What a view is called with after the principal, beside its path parameters."""

    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] = types.MappingProxyType({})


def _no_start(context: object) -> None:
    return None


@dataclasses.dataclass(frozen=True)
class Face(Generic[Context]):
    """One API face's answers to what the shared route plumbing asks (see the module doc)."""

    name: str
    path_prefix: str
    content_types: tuple[str, ...]
    principal_of: Callable[[Request], Principal]
    inputs: Callable[[Request], ViewArguments]
    respond: Callable[[Any, int], Response]
    error_context: Callable[[Request], Context]
    render: Callable[[DomainError, Context], Response]
    start: Callable[[Context], None] = _no_start

    def render_for(self, error: DomainError, request: Request) -> Response:
        """The face's error body for an error raised outside a view (the framework's own)."""
        return self.render(error, self.error_context(request))


def route(
    face: Face[Any],
    bp: Blueprint,
    paths: Iterable[str],
    methods: list[str],
    *,
    status: int = 200,
    public: bool = False,
    inputs: Callable[[Request], ViewArguments] | None = None,
) -> Callable[[View], View]:
    """Registers ``view(principal, *inputs.args, **path_params, **inputs.kwargs)`` under each
    path. A public route gets no principal (None); ``inputs`` replaces the face's for this
    route. The view returns a Response, or a result ``face.respond`` answers with ``status``."""
    read_inputs = inputs or face.inputs

    def register(view: View) -> View:
        @functools.wraps(view)
        def handle(**params: str) -> Response:
            request = bp.current_request
            context = face.error_context(request)
            face.start(context)
            try:
                principal = None if public else face.principal_of(request)
                arguments = read_inputs(request)
                result = view(principal, *arguments.args, **params, **arguments.kwargs)
                if isinstance(result, Response):
                    return result
                return face.respond(result, status)
            except DomainError as error:
                return face.render(error, context)
            except Exception:  # never a bare stack trace: clients get the face's error body
                observability.logger().exception("unhandled error")
                return face.render(DomainError(INTERNAL_ERROR), context)

        for path in paths:
            bp.route(path, methods=methods, content_types=list(face.content_types))(handle)
        return view

    return register


def bearer_principal(request: Request) -> Principal:
    """The caller of an ``Authorization: Bearer <token>`` request."""
    return verify_bearer(request.headers.get("authorization"), container().settings)


@dataclasses.dataclass(frozen=True)
class JsonBodies:
    """How a face reads a JSON body through safe_json, and what it raises when it cannot."""

    #: raised for a body that is not JSON (and for a missing one, when ``missing`` is set)
    error: type[DomainError]
    #: the message for a body that is not JSON; ``{reason}`` says why
    malformed: str
    #: the message for an empty body; None: an empty body reads as None
    missing: str | None = None

    def parse(self, raw: str | bytes | None) -> Any:
        if not raw:
            if self.missing is None:
                return None
            raise self.error(self.missing)
        try:
            return safe_json.loads(raw)
        except safe_json.MalformedJSON as exc:
            raise self.error(self.malformed.format(reason=exc)) from exc


#: every method a catch-all route answers
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def unknown_paths(prefix: str, depth: int) -> list[str]:
    """``prefix`` followed by 1 to ``depth`` variable segments: the routes that answer a face's
    own 404 for paths under its prefix that no route has (Chalice has no greedy parameter).
    A face's real routes match first (a static segment before a variable one), so a real path
    with a method it lacks still gets 405."""
    return [
        prefix + "".join(f"/{{unknown{i}}}" for i in range(1, count + 1))
        for count in range(1, depth + 1)
    ]


def lower_headers(request: Request) -> dict[str, str]:
    """The request's headers, names lower-case."""
    return {name.lower(): value for name, value in request.headers.items()}


def raw_body(request: Request) -> bytes:
    """The body of a request whose method carries one (else empty), as bytes."""
    raw = (request.raw_body or b"") if request.method in BODY_METHODS else b""
    return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)


def caller_read_by_views(_request: Request) -> Principal:
    """``principal_of`` for faces whose routes are all public to the plumbing: their views read
    the caller themselves (OMPS in its own order, the app registry from its call)."""
    raise AssertionError("this face's routes are public to the plumbing")


def no_context(_request: Request) -> None:
    """For faces whose error bodies quote nothing of the request."""
    return None


def query_pairs(request: Request) -> list[tuple[str, str]]:
    """Every (name, value) of the query string, in order, a name once per value."""
    found = request.query_params
    if not found:
        return []
    return [(name, value) for name in found for value in found.getlist(name)]


def grouped(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Each query parameter's values, in order."""
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out
