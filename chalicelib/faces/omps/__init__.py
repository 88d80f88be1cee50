"""The OMPS face (omps-behaviour.md; docs/omps.md): ``register(app)`` adds its blueprints and
the multipart media type its pushes upload (API Gateway passes it to the handler as bytes)."""

from __future__ import annotations

from typing import Any

from chalicelib.faces.omps import koji, not_found, packages, push, service

UPLOAD_TYPE = "multipart/form-data"


def register(app: Any) -> None:
    if UPLOAD_TYPE not in app.api.binary_types:
        app.api.binary_types.append(UPLOAD_TYPE)
    for module in (push, koji, packages, service, not_found):
        app.register_blueprint(module.bp)
