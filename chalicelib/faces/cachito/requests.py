"""Cachito API v1 requests: ``/api/v1/requests`` and each request's sub-resources.

Every route takes Kiln's bearer token; a user sees its tenant's requests only (another
tenant's id is not found), admins and workers see every tenant's. PATCH and adding
configuration files are for role ``worker``.

The download exists twice over the same domain call: as a Chalice route (behind API
Gateway, the body buffered) and as a streaming route (``STREAMING_ROUTES``), which the local
front serves with an iterator out, so no bundle sits in memory. Neither redirects: the
``Digest`` must be on the response the client reads last."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib import observability
from chalicelib.auth import Principal
from chalicelib.container import container
from chalicelib.domain.cachito import (
    bundles,
    listing,
    request_json,
    request_states,
    schema,
    submission,
)
from chalicelib.domain.cachito.request_json import request_json as shown
from chalicelib.errors import DomainError
from chalicelib.faces.cachito.routing import CachitoCall, cachito_route, principal_from, render
from chalicelib.streaming import StreamingRoute, StreamRequest, StreamResponse

bp = Blueprint(__name__)
REQUEST = "/requests/{request_id}"


def no_query(call: CachitoCall) -> None:
    """Upstream declares no query parameters here: any one is refused."""
    schema.check_query((), call.query)


@cachito_route(bp, "/requests", ["GET"])
def get_requests(principal: Principal, call: CachitoCall) -> dict[str, Any]:
    store = container().artifacts
    return listing.list_requests(
        principal,
        call.query,
        call.base_url,
        lambda request, verbose: shown(request, call.base_url, verbose, store),
    )


@cachito_route(bp, "/requests", ["POST"], status=201)
def create_request(principal: Principal, call: CachitoCall) -> dict[str, Any]:
    no_query(call)
    box = container()
    request = submission.create(principal, call.json(), box)
    return shown(request, call.base_url, True, box.artifacts)


@cachito_route(bp, "/requests/latest", ["GET"])
def get_latest_request(principal: Principal, call: CachitoCall) -> dict[str, Any]:
    request = listing.latest(principal, call.query)
    return shown(request, call.base_url, False, container().artifacts)


@cachito_route(bp, REQUEST, ["GET"])
def get_request(principal: Principal, call: CachitoCall, request_id: str) -> dict[str, Any]:
    no_query(call)
    request = listing.visible(request_id, principal)
    return shown(request, call.base_url, True, container().artifacts)


@cachito_route(bp, REQUEST, ["PATCH"])
def patch_request(principal: Principal, call: CachitoCall, request_id: str) -> None:
    request_states.require_worker(principal)
    no_query(call)
    request_states.patch(principal, request_id, call.json(), container().artifacts)


@cachito_route(bp, REQUEST + "/configuration-files", ["GET"])
def get_configuration_files(
    principal: Principal, call: CachitoCall, request_id: str
) -> list[dict[str, str]]:
    no_query(call)
    request = listing.visible(request_id, principal)
    return request_json.configuration_files(request, container().artifacts)


@cachito_route(bp, REQUEST + "/configuration-files", ["POST"], status=204)
def add_configuration_files(principal: Principal, call: CachitoCall, request_id: str) -> None:
    request_states.require_worker(principal)
    no_query(call)
    request_states.add_configuration_files(
        principal, request_id, call.json(), container().artifacts
    )


@cachito_route(bp, REQUEST + "/environment-variables", ["GET"])
def get_environment_variables(
    principal: Principal, call: CachitoCall, request_id: str
) -> dict[str, dict[str, str]]:
    no_query(call)
    return request_json.environment_variables(listing.visible(request_id, principal))


@cachito_route(bp, REQUEST + "/logs", ["GET"])
def get_logs(principal: Principal, call: CachitoCall, request_id: str) -> Response:
    no_query(call)
    request = listing.visible(request_id, principal)
    text = bundles.log_text(request, container().artifacts)
    return Response(body=text, status_code=200, headers={"Content-Type": "text/plain"})


@cachito_route(bp, REQUEST + "/download", ["GET"])
def download(principal: Principal, call: CachitoCall, request_id: str) -> Response:
    no_query(call)
    bundle = _bundle(principal, request_id)
    headers: dict[str, str | list[str]] = {**bundle.headers}
    return Response(body=b"".join(bundle.chunks), status_code=200, headers=headers)


def _bundle(principal: Principal, request_id: str) -> bundles.Bundle:
    request = listing.visible(request_id, principal)
    return bundles.open_bundle(request, container().artifacts)


# -- the streaming download, served by the local front ---------------------------------------
def _stream_download(request: StreamRequest) -> StreamResponse:
    try:
        principal = principal_from({k.lower(): v for k, v in request.headers.items()})
        schema.check_query((), [(name, "") for name in request.query])
        bundle = _bundle(principal, request.params["request_id"])
    except DomainError as error:
        if error.status >= 500:
            observability.logger().error("download refused", extra={"error": error.detail})
        response = render(error)
        body = response.body if isinstance(response.body, bytes) else str(response.body).encode()
        headers = {k: v if isinstance(v, str) else ",".join(v) for k, v in response.headers.items()}
        return StreamResponse(response.status_code, headers, body)
    return StreamResponse(200, bundle.headers, bundle.chunks)


STREAMING_ROUTES: tuple[StreamingRoute, ...] = (
    ("GET", r"/api/v1/requests/(?P<request_id>[^/]+)/download", _stream_download),
)
