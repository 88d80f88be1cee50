"""``/kiln/v1/builds``: every build of the caller's tenant (an admin's: every tenant's),
whichever face made it, with its stages, artifacts, proofs and log, and cancelling one
(docs/kiln-api.md). What the ``kiln`` CLI and the console read."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.auth import Principal
from chalicelib.container import container
from chalicelib.domain.builds import overview
from chalicelib.faces.kiln.routing import kiln_route

bp = Blueprint(__name__)


@kiln_route(bp, "/builds", ["GET"], query=True)
def list_builds(principal: Principal, query: dict[str, str]) -> dict[str, Any]:
    builds, next_marker = overview.list_builds(principal, overview.Filters.of(query))
    return {"builds": builds, "next_marker": next_marker}


@kiln_route(bp, "/builds/{build_id}", ["GET"])
def show_build(principal: Principal, build_id: str) -> dict[str, Any]:
    return overview.build(build_id, principal, container())


@kiln_route(bp, "/builds/{build_id}/log", ["GET"], query=True)
def build_log(principal: Principal, query: dict[str, str], build_id: str) -> dict[str, Any]:
    return overview.log(build_id, principal, query.get("offset"), container())


@kiln_route(bp, "/builds/{build_id}/cancel", ["POST"], status=202)
def cancel_build(principal: Principal, build_id: str) -> dict[str, Any]:
    return overview.cancel(build_id, principal, container())
