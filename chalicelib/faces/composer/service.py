"""Composer: the error registry (GET /errors, /errors/{id}) and this face's OpenAPI document."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import yaml
from chalice import Blueprint

from chalicelib.auth import Principal
from chalicelib.faces.composer import errors
from chalicelib.faces.composer.errors import (
    ErrorNotFound,
    InvalidErrorId,
    InvalidPageParam,
    InvalidSizeParam,
)
from chalicelib.faces.composer.routing import Query, composer_route

bp = Blueprint(__name__)
DOCUMENT = Path(__file__).with_name("kiln-composer-v2.yaml")
DEFAULT_SIZE = 100


@composer_route(bp, "/errors", ["GET"])
def get_error_list(principal: Principal, body: Any, query: Query) -> dict[str, Any]:
    """Composer pages from 0: items [page*size, (page+1)*size) of the registry."""
    page = _count(query, "page", 0, InvalidPageParam)
    size = _count(query, "size", DEFAULT_SIZE, InvalidSizeParam)
    operation_id = ""  # a listed error is a description, not an occurrence
    items = [errors.body(e, operation_id) for e in errors.REGISTRY[page * size : (page + 1) * size]]
    return {
        "kind": "ErrorList",
        "page": page,
        "size": len(items),
        "total": len(errors.REGISTRY),
        "items": items,
    }


@composer_route(bp, "/errors/{error_id}", ["GET"])
def get_error(principal: Principal, body: Any, query: Query, error_id: str) -> dict[str, Any]:
    if not (error_id.isascii() and error_id.isdigit()):
        raise InvalidErrorId(f"'{error_id}' is not an error id (an integer)")
    entry = errors.find(int(error_id))
    if entry is None:
        raise ErrorNotFound(f"no error {error_id} in the registry (see GET /errors)")
    return errors.body(entry, "")


@composer_route(bp, "/openapi", ["GET"])
def get_openapi(principal: Principal, body: Any, query: Query) -> dict[str, Any]:
    return document()


@functools.lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    loaded = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    return json.loads(json.dumps(loaded, default=str))  # YAML dates and the like as strings


def _count(query: Query, name: str, default: int, error: type[Exception]) -> int:
    value = query.get(name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()):
        raise error(f"{name} must be a non-negative integer as a string, not '{value}'")
    return int(value)
