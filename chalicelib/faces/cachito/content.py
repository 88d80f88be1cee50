"""Content manifests and SBOMs: ``GET /api/v1/requests/{id}/content-manifest``,
``GET /api/v1/content-manifest?requests=`` and ``GET /api/v1/sbom?requests=`` (Cachito's
CycloneDX 1.4; ``&format=cyclonedx-1.6``: Kiln's full CycloneDX 1.6 document with the
dependency graph). The documents themselves are built in chalicelib/domain/cachito/manifests.py
and sbom.py from each request's package data.

``requests`` as upstream reads it: split on ``,``, empty items skipped, duplicates collapsed,
``a100 is not an integer.`` for an item that is not a number, ``Cannot find request(s) 3,4.``
for ids that do not exist (or that the caller may not see), and only ``complete`` requests,
with one line per request that is not. No ``requests`` gives the empty document."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.adapters.cachito_models import CachitoRequestModel
from chalicelib.auth import Principal
from chalicelib.container import container
from chalicelib.domain.cachito import listing, manifests, sbom
from chalicelib.domain.cachito.request_json import raw_packages
from chalicelib.domain.cachito.schema import Param, check_query
from chalicelib.errors import BadRequest
from chalicelib.faces.cachito.requests import REQUEST, no_query
from chalicelib.faces.cachito.routing import CachitoCall, cachito_route

bp = Blueprint(__name__)
MANIFEST_STATES = ("complete", "stale")
FORMATS = ["cyclonedx-1.4", "cyclonedx-1.6"]
_REQUESTS = Param("requests")
_FORMAT = Param("format", {"type": "string", "enum": FORMATS})


@cachito_route(bp, REQUEST + "/content-manifest", ["GET"])
def get_request_content_manifest(
    principal: Principal, call: CachitoCall, request_id: str
) -> dict[str, Any]:
    no_query(call)
    request = listing.visible(request_id, principal)
    if request.state not in MANIFEST_STATES:
        raise BadRequest(
            'Content manifests are only available for requests in the "complete" or "stale" states'
        )
    return manifests.request_content_manifest(raw_packages(request, container().artifacts))


@cachito_route(bp, "/content-manifest", ["GET"])
def get_content_manifest(principal: Principal, call: CachitoCall) -> dict[str, Any]:
    query = check_query((_REQUESTS,), call.query)
    requests = complete_requests(principal, query.get("requests"))
    store = container().artifacts
    return manifests.content_manifest([raw_packages(r, store) for r in requests])


@cachito_route(bp, "/sbom", ["GET"])
def get_sbom(principal: Principal, call: CachitoCall) -> dict[str, Any]:
    query = check_query((_REQUESTS, _FORMAT), call.query)
    requests = complete_requests(principal, query.get("requests"))
    store = container().artifacts
    if query.get("format") == "cyclonedx-1.6":
        return sbom.cyclonedx_16(
            [sbom.SbomRequest(int(r.id), r.repo, r.ref, raw_packages(r, store)) for r in requests]
        )
    return sbom.cachito_sbom([raw_packages(r, store) for r in requests])


def request_ids(argument: str | None) -> list[int]:
    """The ids of a ``requests`` argument, each once, in ascending order."""
    found: set[int] = set()
    for item in (argument or "").split(","):
        text = item.strip()
        if not text:
            continue
        if not (text.isascii() and text.isdigit()) or len(text) > 18:
            raise BadRequest(f"{item} is not an integer.")
        found.add(int(text))
    return sorted(found)


def complete_requests(principal: Principal, argument: str | None) -> list[CachitoRequestModel]:
    """The requests named, all existing (for the caller) and all complete; else BadRequest."""
    ids = request_ids(argument)
    found = (
        {int(r.id): r for r in CachitoRequestModel.batch_get(ids, consistent_read=True)}
        if ids
        else {}
    )
    missing = [i for i in ids if i not in found or not principal.can_see(found[i].tenant)]
    if missing:
        raise BadRequest(f"Cannot find request(s) {','.join(str(i) for i in missing)}.")
    requests = [found[i] for i in ids]
    errors = "".join(
        f"Request {r.id} is in state {r.state}, not in {{'complete'}}.\n"
        for r in requests
        if r.state != "complete"
    )
    if errors:
        raise BadRequest(errors)
    return requests
