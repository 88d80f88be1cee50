"""Kiln's rebuild checks of IMS images (docs/reproducibility.md): ask for one, read it, read
its build log. Registered on the images blueprint, under /v3 only (an extension)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.auth import Principal
from chalicelib.container import container
from chalicelib.domain.ims import reproducibility
from chalicelib.faces.ims.routing import V3, ims_route

CHECK = "/images/{image_id}/rebuild-check"


def add_rebuild_check_routes(bp: Blueprint) -> None:
    @ims_route(bp, CHECK, ["POST"], prefixes=(V3,), status=202)
    def request_rebuild_check(principal: Principal, body: Any, image_id: str) -> dict[str, Any]:
        return reproducibility.request_check(principal, image_id, body, container())

    @ims_route(bp, CHECK, ["GET"], prefixes=(V3,))
    def get_rebuild_check(principal: Principal, _body: Any, image_id: str) -> dict[str, Any]:
        return reproducibility.get_check(principal, image_id)

    @ims_route(bp, f"{CHECK}/log", ["GET"], prefixes=(V3,))
    def get_rebuild_check_log(principal: Principal, _body: Any, image_id: str) -> Response:
        text = reproducibility.check_log(principal, image_id, container().artifacts)
        return Response(body=text, status_code=200, headers={"Content-Type": "text/plain"})
