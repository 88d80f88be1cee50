"""/v2/images: create, list, show, patch, delete, tags and (de)activation."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.auth import Principal
from chalicelib.container import container
from chalicelib.domain.glance import images, list_query, listing
from chalicelib.domain.glance.imports import METHODS
from chalicelib.domain.glance.patching import DRAFTS
from chalicelib.errors import UnsupportedMediaType
from chalicelib.faces.glance import views
from chalicelib.faces.glance.routing import GlanceCall, glance_route, respond

bp = Blueprint(__name__)


@glance_route(bp, "/v2/images", ["POST"], status=201)
def create_image(principal: Principal, call: GlanceCall) -> Response:
    box = container()
    body = views.image(images.create(call.json(), principal, box.settings))
    response = respond(body, 201)
    response.headers["Location"] = body["self"]
    response.headers["OpenStack-image-import-methods"] = ",".join(METHODS)
    return response


@glance_route(bp, "/v2/images", ["GET"])
def list_images(principal: Principal, call: GlanceCall) -> dict[str, Any]:
    found = listing.list_images(list_query.parse(call.query_lists), principal)
    return views.page(found.images, found.more, call.query)


@glance_route(bp, "/v2/images/{image_id}", ["GET"])
def show_image(principal: Principal, call: GlanceCall, image_id: str) -> dict[str, Any]:
    return views.image(images.show(image_id, principal))


@glance_route(bp, "/v2/images/{image_id}", ["PATCH"])
def update_image(principal: Principal, call: GlanceCall, image_id: str) -> dict[str, Any]:
    if call.media_type not in DRAFTS:
        raise UnsupportedMediaType(
            f"Image PATCH expects Content-Type one of: {', '.join(sorted(DRAFTS))}"
        )
    box = container()
    draft = DRAFTS[call.media_type]
    return views.image(images.update(image_id, call.json(), principal, box.settings, draft))


@glance_route(bp, "/v2/images/{image_id}", ["DELETE"], status=204)
def delete_image(principal: Principal, call: GlanceCall, image_id: str) -> None:
    images.delete(image_id, principal, container().artifacts)


@glance_route(bp, "/v2/images/{image_id}/tags/{tag}", ["PUT"], status=204)
def add_tag(principal: Principal, call: GlanceCall, image_id: str, tag: str) -> None:
    images.add_tag(image_id, tag, principal, container().settings)


@glance_route(bp, "/v2/images/{image_id}/tags/{tag}", ["DELETE"], status=204)
def delete_tag(principal: Principal, call: GlanceCall, image_id: str, tag: str) -> None:
    images.delete_tag(image_id, tag, principal)


@glance_route(bp, "/v2/images/{image_id}/actions/deactivate", ["POST"], status=204)
def deactivate(principal: Principal, call: GlanceCall, image_id: str) -> None:
    images.deactivate(image_id, principal)


@glance_route(bp, "/v2/images/{image_id}/actions/reactivate", ["POST"], status=204)
def reactivate(principal: Principal, call: GlanceCall, image_id: str) -> None:
    images.reactivate(image_id, principal)
