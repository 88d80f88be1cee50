"""``GET /kiln/v1/provenance/keys``: the public keys that verify the provenance envelopes Kiln
signs (docs/provenance.md). Public, no token: a public key is meant to be known, and whoever
verifies an artifact (a deployment pipeline, a customer) may hold no Kiln account."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.container import container
from chalicelib.domain.builds import provenance
from chalicelib.faces.kiln.routing import kiln_route

bp = Blueprint(__name__)


@kiln_route(bp, "/provenance/keys", ["GET"], public=True)
def keys(_principal: None) -> dict[str, Any]:
    return provenance.published_keys(container().signer)
