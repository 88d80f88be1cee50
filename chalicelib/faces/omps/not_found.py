"""Every other path under ``/omps`` answers OMPS's own 404 (``NotFound``, Flask's standard
text), for any method, as upstream does (omps-behaviour.md §1), instead of the gateway's
``Missing Authentication Token`` (see routing_core.unknown_paths)."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.errors import NotFound
from chalicelib.faces.omps.routing import OmpsCall, omps_route
from chalicelib.faces.routing_core import ANY_METHOD, unknown_paths

bp = Blueprint(__name__)

#: one more segment than the deepest real route (/v1/{org}/{repo}/koji/{nvr}/{version})
DEPTH = 8


@omps_route(bp, unknown_paths("", DEPTH), ANY_METHOD)
def unknown_path(_principal: None, _call: OmpsCall, **_segments: str) -> None:
    raise NotFound("no such path")
