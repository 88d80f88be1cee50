"""The JSON shapes of Quay's appregistry (CNR) API (omps-behaviour.md §14): a release
manifest, a package summary, a pull answer in its JSON form, a delete answer.

A release manifest's ``digest`` is the sha256 of its manifest (media type and content
descriptor, as Quay computes it); ``content.digest`` is the sha256 of the blob, with no prefix."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.domain.appregistry.releases import PackageSummary, Release

SCHEMA_VERSION = "v0"


def manifest_media_type(media_type: str) -> str:
    return f"application/vnd.cnr.package-manifest.{media_type}.{SCHEMA_VERSION}.json"


def content_media_type(media_type: str) -> str:
    return f"application/vnd.cnr.package.{media_type}.{SCHEMA_VERSION}.tar+gzip"


def content_descriptor(media_type: str, digest: str, size: int) -> dict[str, Any]:
    return {
        "digest": digest,
        "size": size,
        "mediaType": content_media_type(media_type),
        "urls": [],
    }


def manifest_digest(media_type: str, digest: str, size: int) -> str:
    """``sha256:<hex>`` of the release's manifest (its media type and content descriptor)."""
    manifest = {
        "mediaType": manifest_media_type(media_type),
        "content": content_descriptor(media_type, digest, size),
    }
    return "sha256:" + hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def release_manifest(release: Release) -> dict[str, Any]:
    """One release of one media type, as ``GET …/<pkg>[/<release>]`` lists them."""
    return {
        "package": release.name,
        "release": release.release,
        "created_at": shown_time(release.created_at),
        "digest": release.manifest_digest,
        "mediaType": manifest_media_type(release.media_type),
        "metadata": None,
        "content": content_descriptor(release.media_type, release.digest, release.size),
    }


def shown_release(release: Release) -> dict[str, Any]:
    """``GET …/<pkg>/<release>/<media_type>``: the manifest and the channels it heads (Kiln
    keeps none)."""
    return {"channels": [], **release_manifest(release)}


def package_summary(summary: PackageSummary) -> dict[str, Any]:
    """One entry of ``GET /cnr/api/v1/packages?namespace=``."""
    return {
        "name": summary.name,
        "namespace": summary.namespace,
        "default": summary.default,
        "releases": list(summary.releases),
        "manifests": list(summary.media_types),
        "visibility": summary.visibility,
        "created_at": shown_time(summary.created_at),
        "updated_at": shown_time(summary.updated_at),
        "channels": None,
    }


def shown_time(stamp: str) -> str:
    """A stored time as Quay shows it: ``YYYY-MM-DDTHH:MM:SS`` (UTC)."""
    return stamp[:19]


def filename(package: str, release: str) -> str:
    """The file name a pull suggests: ``ns_pkg_<release>.tar.gz``."""
    return f"{package.replace('/', '_')}_{release}.tar.gz"


def pulled(package: str, release: str, blob: bytes, name: str) -> dict[str, Any]:
    """A pull's JSON form (``?format=json``)."""
    return {
        "package": package,
        "blob": base64.b64encode(blob).decode("ascii"),
        "release": release,
        "filename": name,
    }


def pulled_release(release: Release, blob: bytes) -> dict[str, Any]:
    return pulled(release.name, release.release, blob, filename(release.name, release.release))


def pulled_blob(package: str, digest: str, blob: bytes) -> dict[str, Any]:
    """A blob's JSON form: ``release`` is the digest, the file name takes its first 8 digits
    (as Quay's)."""
    return pulled(package, digest, blob, filename(package, digest[:8]))


def deleted(release: Release) -> dict[str, Any]:
    return {"status": "deleted", "package": release.name, "release": release.release}
