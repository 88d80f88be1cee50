"""App registry (CNR) face, the package routes of Quay's appregistry API (omps-behaviour.md
§14) under ``/cnr/api/v1/packages``: list a namespace, push (what operator-courier sends), show
a package, its releases and one manifest, pull a release or a blob (a tar.gz, or its JSON form
with ``?format=json``), delete a release, and Kiln's export of a release as an OLM bundle.

Paths: ``…/{pkg}/blobs/sha256/{digest}`` and ``…/{pkg}/{release}/{media_type}/pull`` have as
many segments; the static ``blobs`` beside ``{release}`` is matched first, as API Gateway and
Chalice's local matcher do, and no release is called ``blobs`` (it is not a version)."""

from __future__ import annotations

import json
import re
from typing import Any

from chalice import Blueprint, Response

from chalicelib import safe_json
from chalicelib.container import container
from chalicelib.domain.appregistry import blobs, manifests, olm_bundle
from chalicelib.domain.appregistry.blobs import BlobLimits
from chalicelib.domain.appregistry.errors import InvalidUsage, PackageNotFound
from chalicelib.domain.appregistry.releases import AppRegistry, Release
from chalicelib.faces.cnr.routing import CnrCall, cnr_route

bp = Blueprint(__name__)
PACKAGES = "/api/v1/packages"
PACKAGE = PACKAGES + "/{namespace}/{package}"
RELEASE = PACKAGE + "/{release}"
MANIFEST = RELEASE + "/{media_type}"
BLOB = PACKAGE + "/blobs/sha256/{digest}"
TARGZ_TYPE = "application/x-gzip"
BUNDLE_TYPE = "application/gzip"
DIGEST = re.compile(r"^[0-9a-f]{64}$")
#: what a push body may hold beside its blob (nesting, text), checked as every JSON body is
PUSH_FIELDS = ("release", "media_type", "visibility")


def registry() -> AppRegistry:
    return container().app_registry


def limits() -> BlobLimits:
    return BlobLimits.from_settings(container().settings)


# -- listing and push ---------------------------------------------------------------------------
@cnr_route(bp, PACKAGES, ["GET"])
def list_packages(_principal: None, call: CnrCall) -> list[dict[str, Any]]:
    namespace = call.param("namespace")
    if not namespace:
        raise InvalidUsage("Missing namespace: the namespace query parameter is required")
    found = registry().packages(
        call.caller, namespace, media_type=call.param("media_type"), query=call.param("query")
    )
    return [manifests.package_summary(summary) for summary in found]


@cnr_route(bp, PACKAGE, ["POST"])
def push(_principal: None, call: CnrCall, namespace: str, package: str) -> dict[str, str]:
    """``{"blob": "<base64 tar.gz>", "release", "media_type"[, "visibility"]}``; checked in
    Quay's order: the names, the caller's right to create or push, the fields, the blob."""
    apps = registry()
    apps.check_push(call.caller, namespace, package)
    values = _push_body(call.raw_body)
    for field in ("release", "media_type", "blob"):
        if field not in values:
            raise InvalidUsage(f"Missing {field}")
    blob = blobs.decode(values["blob"], limits())
    visibility = values.get("visibility")
    apps.publish(
        call.caller,
        namespace,
        package,
        blob,
        release=_text(values["release"]),
        media_type=_text(values["media_type"]),
        force=call.param("force") == "true",
        initial_visibility=None if visibility is None else _text(visibility),
    )
    return {"status": "ok"}


# -- reads --------------------------------------------------------------------------------------
@cnr_route(bp, PACKAGE, ["GET"])
def show_package(
    _principal: None, call: CnrCall, namespace: str, package: str
) -> list[dict[str, Any]]:
    found = registry().releases(call.caller, namespace, package, call.param("media_type"))
    return [manifests.release_manifest(release) for release in found]


@cnr_route(bp, RELEASE, ["GET"])
def show_release(
    _principal: None, call: CnrCall, namespace: str, package: str, release: str
) -> list[dict[str, Any]]:
    found = [
        item
        for item in registry().releases(call.caller, namespace, package)
        if item.release == release
    ]
    if not found:
        name = f"{namespace}/{package}"
        raise PackageNotFound(
            f"package {name} doesn't exist, v: {release}, type: None",
            {"package": name, "release": release, "media_type": None},
        )
    return [manifests.release_manifest(item) for item in found]


@cnr_route(bp, MANIFEST, ["GET"])
def show_manifest(
    _principal: None, call: CnrCall, namespace: str, package: str, release: str, media_type: str
) -> dict[str, Any]:
    found = registry().release(call.caller, namespace, package, release, media_type)
    return manifests.shown_release(found)


@cnr_route(bp, MANIFEST + "/pull", ["GET"])
def pull(
    _principal: None, call: CnrCall, namespace: str, package: str, release: str, media_type: str
) -> Response:
    found, blob = registry().pull(call.caller, namespace, package, release, media_type)
    if call.param("format") == "json":
        return _json(manifests.pulled_release(found, blob))
    return _targz(blob, manifests.filename(found.name, found.release))


@cnr_route(bp, BLOB, ["GET"])
def pull_blob(
    _principal: None, call: CnrCall, namespace: str, package: str, digest: str
) -> Response:
    digest = digest.removeprefix("sha256:")
    if not DIGEST.match(digest):
        name = f"{namespace}/{package}"
        raise PackageNotFound(
            f"package {name} doesn't exist, v: {digest}, type: None",
            {"package": name, "release": digest, "media_type": None},
        )
    blob = registry().blob(call.caller, namespace, package, digest)
    name = f"{namespace}/{package}"
    if call.param("format") == "json":
        return _json(manifests.pulled_blob(name, digest, blob))
    return _targz(blob, manifests.filename(name, digest[:8]))


@cnr_route(bp, MANIFEST + "/olm-bundle", ["GET"])
def olm_export(
    _principal: None, call: CnrCall, namespace: str, package: str, release: str, media_type: str
) -> Response:
    """The release as an OLM bundle (registry+v1) tar.gz; ``?csv=`` picks the CSV."""
    _found, blob = registry().pull(call.caller, namespace, package, release, media_type)
    bundle = olm_bundle.export(blob, limits(), call.param("csv"))
    headers: dict[str, str | list[str]] = {
        "Content-Type": BUNDLE_TYPE,
        "Content-Disposition": f'attachment; filename="{bundle.filename}"',
    }
    return Response(body=bundle.data, status_code=200, headers=headers)


# -- delete -------------------------------------------------------------------------------------
@cnr_route(bp, MANIFEST, ["DELETE"])
def delete_release(
    _principal: None, call: CnrCall, namespace: str, package: str, release: str, media_type: str
) -> dict[str, Any]:
    deleted: Release = registry().delete(call.caller, namespace, package, release, media_type)
    return manifests.deleted(deleted)


# -- helpers ------------------------------------------------------------------------------------
def _push_body(raw: bytes) -> dict[str, Any]:
    """The push body. Its blob is longer than safe_json lets any string be, so the body is
    parsed by json and everything but the blob is then checked as safe_json checks a body.
    As Quay's, a body that is not a JSON object counts as an empty one."""
    try:
        values = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):
        return {}
    if not isinstance(values, dict):
        return {}
    try:
        safe_json.check({key: value for key, value in values.items() if key != "blob"})
    except safe_json.MalformedJSON as exc:
        raise InvalidUsage(f"Invalid JSON body: {exc}") from None
    return values


def _text(value: Any) -> str:
    """A field as Quay reads it (``str(values[...])``); JSON null stays unusable."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _json(body: dict[str, Any]) -> Response:
    return Response(
        body=json.dumps(body), status_code=200, headers={"Content-Type": "application/json"}
    )


def _targz(blob: bytes, filename: str) -> Response:
    headers: dict[str, str | list[str]] = {
        "Content-Type": TARGZ_TYPE,
        "Content-Disposition": filename,
    }
    return Response(body=blob, status_code=200, headers=headers)
