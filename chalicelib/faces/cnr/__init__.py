"""Kiln's app registry, served as Quay's appregistry (CNR) API (omps-behaviour.md §14;
docs/omps.md): ``register(app)`` adds its blueprints and the blob media type (bytes behind API
Gateway)."""

from __future__ import annotations

from typing import Any

from chalicelib.faces.cnr import not_found, packages, session

BLOB_TYPES = ("application/x-gzip", "application/gzip")


def register(app: Any) -> None:
    for media_type in BLOB_TYPES:
        if media_type not in app.api.binary_types:
            app.api.binary_types.append(media_type)
    for module in (session, packages, not_found):
        app.register_blueprint(module.bp)
