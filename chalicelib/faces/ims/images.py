"""IMS images: /images, plus Kiln's manifest view with presigned download links."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.auth import Principal
from chalicelib.container import container
from chalicelib.domain.ims import images
from chalicelib.domain.ims.lifecycle import IMAGE
from chalicelib.faces.ims import views
from chalicelib.faces.ims.lifecycle_routes import add_lifecycle_routes
from chalicelib.faces.ims.rebuild_checks import add_rebuild_check_routes
from chalicelib.faces.ims.routing import ims_route

bp = Blueprint(__name__)
add_lifecycle_routes(bp, "images", "image_id", IMAGE, views.image)
add_rebuild_check_routes(bp)  # Kiln's extension (docs/reproducibility.md)


@ims_route(bp, "/images", ["GET"])
def list_images(principal: Principal, _body: Any) -> list[dict[str, Any]]:
    return [views.image(i) for i in images.list_for(principal)]


@ims_route(bp, "/images", ["POST"], status=201)
def create_image(principal: Principal, body: Any) -> dict[str, Any]:
    return views.image(images.create(principal, body, container().artifacts))


@ims_route(bp, "/images/{image_id}", ["GET"])
def get_image(principal: Principal, _body: Any, image_id: str) -> dict[str, Any]:
    return views.image(images.get(principal, image_id))


@ims_route(bp, "/images/{image_id}", ["PATCH"])
def patch_image(principal: Principal, body: Any, image_id: str) -> dict[str, Any]:
    return views.image(images.patch(principal, image_id, body, container().artifacts))


@ims_route(bp, "/images/{image_id}/manifest", ["GET"])
def get_image_manifest(principal: Principal, _body: Any, image_id: str) -> dict[str, Any]:
    return images.manifest(principal, image_id, container().artifacts)
