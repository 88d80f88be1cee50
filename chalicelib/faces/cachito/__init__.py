"""The Cachito API v1 face (cachito-behaviour.md; docs/cachito.md): ``register(app)`` adds its
blueprints and the bundle's binary media type; ``STREAMING_ROUTES`` are its download as the
local front streams it."""

from __future__ import annotations

from typing import Any

from chalicelib.faces.cachito import content, requests, status

BUNDLE_TYPE = "application/gzip"
STREAMING_ROUTES = requests.STREAMING_ROUTES


def register(app: Any) -> None:
    """The face's routes on ``app``; bundles are binary (API Gateway passes them as bytes)."""
    if BUNDLE_TYPE not in app.api.binary_types:
        app.api.binary_types.append(BUNDLE_TYPE)
    for module in (requests, content, status):
        app.register_blueprint(module.bp)
