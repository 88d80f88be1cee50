"""Kiln's own face (``/kiln/v1``): what belongs to no client API, served by every deployment
whatever ``KILN_FACES`` says. Today: the public keys that verify build provenance
(docs/provenance.md). ``register(app)`` adds its blueprints."""

from __future__ import annotations

from typing import Any

from chalicelib.faces.kiln import provenance


def register(app: Any) -> None:
    app.register_blueprint(provenance.bp)
