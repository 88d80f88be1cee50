"""Image data: PUT/GET /file, PUT /stage, POST /import and the direct-upload extension.

PUT /file, GET /file and PUT /stage exist twice over the same domain calls: as Chalice routes
(on AWS, bodies API Gateway buffered; a download larger than ``glance_inline_data_max`` is a
redirect to a presigned S3 URL) and as streaming routes (``STREAMING_ROUTES``), which the local
front serves with the socket's stream in and an iterator out, so no image sits in memory."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any, BinaryIO

from chalice import Blueprint, Response

from chalicelib import observability
from chalicelib.auth import Principal
from chalicelib.container import container
from chalicelib.domain.glance import data, direct, imports
from chalicelib.errors import DomainError, UnsupportedMediaType
from chalicelib.faces.glance.errors import render
from chalicelib.faces.glance.routing import GlanceCall, glance_route, principal_of
from chalicelib.streaming import StreamingRoute, StreamRequest, StreamResponse

bp = Blueprint(__name__)
IMAGE = "/v2/images/{image_id}"


def _put_file(principal: Principal, image_id: str, body: BinaryIO, length: int | None) -> None:
    box = container()
    data.upload(image_id, principal, body, length, box.artifacts, box.settings)


def _put_stage(principal: Principal, image_id: str, body: BinaryIO, length: int | None) -> None:
    box = container()
    imports.stage(image_id, principal, body, length, box.artifacts, box.settings)


def _octet_stream(content_type: str | None) -> None:
    """As Glance: data comes as application/octet-stream (or with no Content-Type at all)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind and kind != "application/octet-stream":
        raise UnsupportedMediaType(
            f"Content type {kind} is not supported; send the data as application/octet-stream."
        )


@glance_route(bp, IMAGE + "/file", ["PUT"], status=204)
def upload_file(principal: Principal, call: GlanceCall, image_id: str) -> None:
    _octet_stream(call.headers.get("content-type"))
    _put_file(principal, image_id, io.BytesIO(call.raw_body), len(call.raw_body))


@glance_route(bp, IMAGE + "/stage", ["PUT"], status=204)
def stage(principal: Principal, call: GlanceCall, image_id: str) -> None:
    _octet_stream(call.headers.get("content-type"))
    _put_stage(principal, image_id, io.BytesIO(call.raw_body), len(call.raw_body))


@glance_route(bp, IMAGE + "/file", ["GET"])
def download_file(principal: Principal, call: GlanceCall, image_id: str) -> Response:
    box = container()
    found = data.download(image_id, principal, call.headers.get("range"), box.artifacts)
    if found.status == 204:  # no data: an empty text body (bytes without a binary type break)
        return Response(body="", status_code=204)
    too_large = found.size > box.settings.glance_inline_data_max
    if too_large or not _takes_bytes(call.headers.get("accept")):
        location = box.artifacts.presign_get(found.key)
        return Response(body="", status_code=303, headers={"Location": location})
    headers: dict[str, str | list[str]] = {**found.headers}
    return Response(body=b"".join(found.chunks), status_code=found.status, headers=headers)


def _takes_bytes(accept: str | None) -> bool:
    """Whether Chalice may answer with bytes: it refuses a binary response (with an error the
    client never asked for) unless ``Accept`` names a binary type or ``*/*``, as API Gateway
    sends bytes only then. A client that does not accept them gets the presigned S3 URL."""
    if not accept:
        return False
    binary = {kind.lower() for kind in bp.current_app.api.binary_types}
    offered = {part.strip().lower() for part in re.split(r"[,;]", accept)}
    return "*/*" in accept or bool(offered & binary)


@glance_route(bp, IMAGE + "/import", ["POST"], status=202)
def import_image(principal: Principal, call: GlanceCall, image_id: str) -> None:
    box = container()
    imports.begin(image_id, call.json(), principal, box.glance_imports, box.settings)


@glance_route(bp, IMAGE + "/direct-upload", ["POST"], status=201)
def start_direct_upload(principal: Principal, call: GlanceCall, image_id: str) -> dict[str, Any]:
    body = call.json() if call.raw_body else None
    return direct.start(image_id, body, principal, container().artifacts)


@glance_route(bp, IMAGE + "/direct-upload/complete", ["POST"], status=202)
def complete_direct_upload(principal: Principal, call: GlanceCall, image_id: str) -> None:
    direct.complete(image_id, call.json(), principal, container().artifacts)


@glance_route(bp, IMAGE + "/direct-upload", ["DELETE"], status=204)
def abort_direct_upload(principal: Principal, call: GlanceCall, image_id: str) -> None:
    direct.abort(image_id, principal, container().artifacts)


# -- the streaming routes, served by the local front -------------------------------------------
Receive = Callable[[Principal, str, BinaryIO, "int | None"], None]


def _receiving(receive: Receive) -> Callable[[StreamRequest], StreamResponse]:
    def handle(request: StreamRequest) -> StreamResponse:
        try:
            principal = principal_of(request.headers)
            _octet_stream(request.headers.get("content-type"))
            receive(principal, request.params["image_id"], request.body, request.content_length)
        except DomainError as error:
            return _error(error, request)
        return StreamResponse(204, {}, b"")

    return handle


def _send_file(request: StreamRequest) -> StreamResponse:
    try:
        principal = principal_of(request.headers)
        found = data.download(
            request.params["image_id"],
            principal,
            request.headers.get("range"),
            container().artifacts,
        )
    except DomainError as error:
        return _error(error, request)
    return StreamResponse(found.status, found.headers, found.chunks)


def _error(error: DomainError, request: StreamRequest) -> StreamResponse:
    if error.status >= 500:
        observability.logger().exception("streaming route failed")
    response = render(error, request.headers.get("accept"))
    body = response.body if isinstance(response.body, bytes) else str(response.body).encode()
    headers = {k: v if isinstance(v, str) else ",".join(v) for k, v in response.headers.items()}
    return StreamResponse(response.status_code, headers, body)


_ID = r"/v2/images/(?P<image_id>[^/]+)"
STREAMING_ROUTES: tuple[StreamingRoute, ...] = (
    ("PUT", _ID + "/file", _receiving(_put_file)),
    ("GET", _ID + "/file", _send_file),
    ("PUT", _ID + "/stage", _receiving(_put_stage)),
)
