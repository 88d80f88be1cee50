"""Every other path under ``/cnr`` answers the registry's own 404
(``{"error": {"code": "not-found", ...}}``), for any method, whoever calls (see
routing_core.unknown_paths)."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.errors import NotFound
from chalicelib.faces import routing_core
from chalicelib.faces.cnr.routing import CNR_FACE, PREFIX
from chalicelib.faces.routing_core import ANY_METHOD, ViewArguments, unknown_paths

bp = Blueprint(__name__)

#: one more segment than the deepest real route (/api/v1/packages/{ns}/{pkg}/{r}/{mt}/pull)
DEPTH = 9


def _nothing(_request: object) -> ViewArguments:
    return ViewArguments(())  # not even the caller: an unknown path is 404 for everyone


@routing_core.route(
    CNR_FACE, bp, unknown_paths(PREFIX, DEPTH), ANY_METHOD, public=True, inputs=_nothing
)
def unknown_path(_principal: None, **_segments: str) -> None:
    raise NotFound(f"no such path under {PREFIX}")
