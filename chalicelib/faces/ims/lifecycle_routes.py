"""The DELETE and ``/v3/deleted/...`` routes recipes, images and public keys share.

v3 DELETE is a soft delete (the record moves to ``/v3/deleted/...``); the legacy API's DELETE
(unversioned and ``/v2``) is a hard delete that also removes the artifacts unless
``cascade=false``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice import Blueprint

from chalicelib.auth import Principal
from chalicelib.container import container
from chalicelib.domain.ims import lifecycle
from chalicelib.domain.ims.lifecycle import Kind
from chalicelib.faces.ims.routing import LEGACY, V3, Query, View, flag, ims_route


def add_lifecycle_routes(
    bp: Blueprint,
    collection: str,
    id_param: str,
    kind: Kind,
    show: Callable[[Any], dict[str, Any]],
) -> None:
    """``id_param`` must be the name the collection's other routes use for the id."""
    one, every = f"/{collection}/{{{id_param}}}", f"/{collection}"
    deleted_one, deleted_every = f"/deleted{one}", f"/deleted{every}"
    name = kind.name.replace("-", "_")

    def route(
        suffix: str, method: str, prefixes: tuple[str, ...], status: int = 204, **kw: Any
    ) -> Callable[[View], View]:
        def register(view: View) -> View:
            view.__name__ = f"{name}_{view.__name__}"
            return ims_route(bp, suffix, [method], prefixes=prefixes, status=status, **kw)(view)

        return register

    @route(one, "DELETE", (V3,))
    def soft_delete(principal: Principal, _body: Any, **ids: str) -> None:
        lifecycle.soft_delete(principal, kind, ids[id_param], container().artifacts)

    @route(every, "DELETE", (V3,))
    def soft_delete_all(principal: Principal, _body: Any) -> None:
        lifecycle.soft_delete_all(principal, kind, container().artifacts)

    @route(one, "DELETE", LEGACY, query=True)
    def hard_delete(principal: Principal, _body: Any, query: Query, **ids: str) -> None:
        cascade = flag(query, "cascade", True)
        lifecycle.hard_delete(principal, kind, ids[id_param], container().artifacts, cascade)

    @route(every, "DELETE", LEGACY, query=True)
    def hard_delete_all(principal: Principal, _body: Any, query: Query) -> None:
        cascade = flag(query, "cascade", True)
        lifecycle.hard_delete_all(principal, kind, container().artifacts, cascade)

    @route(deleted_every, "GET", (V3,), status=200)
    def list_deleted(principal: Principal, _body: Any) -> list[dict[str, Any]]:
        return [show(r) for r in lifecycle.list_deleted(principal, kind)]

    @route(deleted_one, "GET", (V3,), status=200)
    def get_deleted(principal: Principal, _body: Any, **ids: str) -> dict[str, Any]:
        return show(lifecycle.get_deleted(principal, kind, ids[id_param]))

    @route(deleted_every, "PATCH", (V3,))
    def undelete_all(principal: Principal, body: Any) -> None:
        lifecycle.undelete_all(principal, kind, body, container().artifacts)

    @route(deleted_one, "PATCH", (V3,))
    def undelete(principal: Principal, body: Any, **ids: str) -> None:
        lifecycle.undelete(principal, kind, ids[id_param], body, container().artifacts)

    @route(deleted_every, "DELETE", (V3,))
    def purge_all(principal: Principal, _body: Any) -> None:
        lifecycle.purge_all(principal, kind, container().artifacts)

    @route(deleted_one, "DELETE", (V3,))
    def purge(principal: Principal, _body: Any, **ids: str) -> None:
        lifecycle.purge(principal, kind, ids[id_param], container().artifacts)
