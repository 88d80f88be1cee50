"""Kiln's extension GET /v2/images/{image_id}/sbom: the SBOM of an image a build registered,
``?format=cyclonedx-1.6`` (the default) or ``spdx-2.3`` (domain/glance/sbom.py)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.auth import Principal
from chalicelib.container import container
from chalicelib.domain.glance import sbom
from chalicelib.faces.glance.routing import GlanceCall, glance_route

bp = Blueprint(__name__)


@glance_route(bp, "/v2/images/{image_id}/sbom", ["GET"])
def get_sbom(principal: Principal, call: GlanceCall, image_id: str) -> Response:
    formats = call.query_lists.get("format")
    found = sbom.sbom(image_id, formats[-1] if formats else None, principal, container().artifacts)
    return Response(body=found.text, status_code=200, headers={"Content-Type": found.media_type})
