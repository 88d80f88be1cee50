"""Kiln's own face (``/kiln/v1``): what belongs to no client API, served by every deployment
whatever ``KILN_FACES`` says: every build of every face in one list, with its log, artifacts
and proofs (docs/kiln-api.md), the public keys that verify build provenance
(docs/provenance.md), and the web console (docs/console.md). ``register(app)`` adds its
blueprints."""

from __future__ import annotations

from typing import Any

from chalicelib.faces.kiln import builds, console, provenance


def register(app: Any) -> None:
    for blueprint in (provenance.bp, builds.bp, console.bp):
        app.register_blueprint(blueprint)
