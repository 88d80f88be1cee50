"""Every other path under ``/omps`` answers OMPS's own 404 (``NotFound``, Flask's standard
text), for any method, as upstream does (omps-behaviour.md §1), instead of the gateway's
``Missing Authentication Token``. Chalice has no greedy path parameter, so these are routes of
one to ``DEPTH`` variable segments; the face's real routes are matched before them (a static
segment before a variable one), so a real path with the wrong method still gets 405."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.errors import NotFound
from chalicelib.faces.omps.routing import OmpsCall, omps_route

bp = Blueprint(__name__)

#: one more segment than the deepest real route (/v1/{org}/{repo}/koji/{nvr}/{version})
DEPTH = 8
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
PATHS = ["".join(f"/{{unknown{i}}}" for i in range(1, depth + 1)) for depth in range(1, DEPTH + 1)]


@omps_route(bp, PATHS, METHODS)
def unknown_path(_principal: None, _call: OmpsCall, **_segments: str) -> None:
    raise NotFound("no such path")
