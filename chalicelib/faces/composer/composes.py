"""Composer: POST /compose and GET /composes/{id}[/metadata|/logs|/manifests]."""

from __future__ import annotations

import uuid
from typing import Any

from chalice import Blueprint

from chalicelib.auth import Principal
from chalicelib.container import container
from chalicelib.domain.composer import composes
from chalicelib.errors import NotFound
from chalicelib.faces.composer import views
from chalicelib.faces.composer.errors import ComposeNotFound, InvalidComposeId, InvalidOffsetParam
from chalicelib.faces.composer.routing import Query, composer_route

bp = Blueprint(__name__)


@composer_route(bp, "/compose", ["POST"], status=201)
def post_compose(principal: Principal, body: Any, query: Query) -> dict[str, Any]:
    box = container()
    compose = composes.create(principal, body, box)
    return views.compose_id(compose)


@composer_route(bp, "/composes/{compose_id}", ["GET"])
def get_compose_status(
    principal: Principal, body: Any, query: Query, compose_id: str
) -> dict[str, Any]:
    compose = _compose(principal, compose_id)
    return views.compose_status(compose, composes.image_builds(compose), container().artifacts)


@composer_route(bp, "/composes/{compose_id}/metadata", ["GET"])
def get_compose_metadata(
    principal: Principal, body: Any, query: Query, compose_id: str
) -> dict[str, Any]:
    compose = _compose(principal, compose_id)
    builds = composes.image_builds(compose)
    store = container().artifacts
    sboms = [composes.sbom(build, store) for build in builds]
    return views.metadata(compose, composes.packages(builds, store), builds, sboms)


@composer_route(bp, "/composes/{compose_id}/logs", ["GET"])
def get_compose_logs(
    principal: Principal, body: Any, query: Query, compose_id: str
) -> dict[str, Any]:
    offset = _offset(query)
    compose = _compose(principal, compose_id)
    builds = composes.image_builds(compose)
    store = container().artifacts
    return views.logs(compose, builds, [composes.log(b, store, offset) for b in builds])


@composer_route(bp, "/composes/{compose_id}/manifests", ["GET"])
def get_compose_manifests(
    principal: Principal, body: Any, query: Query, compose_id: str
) -> dict[str, Any]:
    compose = _compose(principal, compose_id)
    store = container().artifacts
    builds = composes.image_builds(compose)
    plans = [composes.build_plan(compose, b, store) for b in builds]
    return views.manifests(compose, plans, [composes.sbom(b, store) for b in builds])


def _compose(principal: Principal, compose_id: str) -> Any:
    try:
        canonical = str(uuid.UUID(compose_id)) == compose_id
    except ValueError:
        canonical = False
    if not canonical:
        raise InvalidComposeId(f"'{compose_id}' is not a compose id (a lower-case UUID)")
    try:
        return composes.get(principal, compose_id)
    except NotFound as exc:
        raise ComposeNotFound(f"compose {compose_id} not found") from exc


def _offset(query: Query) -> int:
    value = query.get("offset", "0")
    if not (value.isascii() and value.isdigit()):
        raise InvalidOffsetParam(f"offset must be a non-negative integer, not '{value}'")
    return int(value)
