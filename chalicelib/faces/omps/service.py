"""OMPS face: the service's own routes (omps-behaviour.md §11), public (no Authorization):
``GET /omps/v1|v2/health/ping`` (HTTP status = the body's ``status``) and
``GET /omps/v1|v2/about``. HEAD is answered too, as Flask (upstream's framework) does for every
GET route."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.container import container
from chalicelib.domain.omps import health
from chalicelib.faces.omps.routing import OmpsCall, omps_route, respond

bp = Blueprint(__name__)


@omps_route(bp, ["/v1/health/ping", "/v2/health/ping"], ["GET", "HEAD"])
def ping(_principal: None, _call: OmpsCall) -> Response:
    box = container()
    report = health.ping(box.settings, box.artifacts)
    return respond(report, report["status"])


@omps_route(bp, ["/v1/about", "/v2/about"], ["GET", "HEAD"])
def about(_principal: None, _call: OmpsCall) -> dict[str, Any]:
    return health.about(container().settings)
