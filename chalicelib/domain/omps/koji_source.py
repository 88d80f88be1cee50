"""The Koji source of an OMPS push (omps-behaviour.md §9): the build's operator-manifests
archive, found from its N-V-R and downloaded, then the build's Greenwave gating decision.

1. ``getBuild(nvr)``; no build → 404 ``KojiNVRBuildNotFound``.
2. The archive: ``extra.typeinfo["operator-manifests"].archive`` under the build's directory
   (``<root>/packages/<name>/<version>/<release>/files/operator-manifests/<archive>``, or under
   ``<root>/vol/<volume>`` for a build on another volume, as Koji lays files out); else the legacy
   ``extra.operator_manifests_archive`` among the build's logs (absent → 500
   ``KojiManifestsArchiveNotFound``); neither key → 400 ``KojiNotAnOperatorImage``.
3. The download, with the timeout and the size cap (§15.7).
4. Greenwave, when configured (``omps_greenwave_url``).

Every failure of Koji itself — the hub unreachable or faulting, the download's HTTP error, an
archive over the cap — is 500 ``KojiError`` with the failure's text, never an internal error.

Kiln's choice where upstream has none: with no hub or no root URL configured
(``KILN_OMPS_KOJI_HUB_URL``, ``KILN_OMPS_KOJI_ROOT_URL``), a koji push is 500 ``KojiError``
``Koji is not configured on this service (<the missing settings>)`` — after the Authorization
check, as any Koji failure would be — rather than a 404 for routes that exist."""

from __future__ import annotations

from typing import Any

from chalicelib.adapters.greenwave import Greenwave, GreenwaveUnavailable
from chalicelib.adapters.koji_hub import KojiHub, KojiUnavailable
from chalicelib.config import Settings
from chalicelib.domain.omps.errors import (
    GreenwaveError,
    GreenwaveUnsatisfiedError,
    KojiError,
    KojiManifestsArchiveNotFound,
    KojiNotAnOperatorImage,
    KojiNVRBuildNotFound,
)

#: the build type OSBS files the archive under, and the legacy key naming it among the logs
BUILD_TYPE = "operator-manifests"
LEGACY_KEY = "operator_manifests_archive"


def koji_hub(settings: Settings) -> KojiHub | None:
    """The configured Koji hub, or None when ``omps_koji_hub_url`` is not set."""
    if not settings.omps_koji_hub_url:
        return None
    return KojiHub(
        settings.omps_koji_hub_url,
        settings.omps_koji_root_url,
        settings.omps_request_timeout_seconds,
        settings.omps_koji_max_bytes,
    )


def greenwave(settings: Settings) -> Greenwave | None:
    """The configured Greenwave, or None when ``omps_greenwave_url`` is not set."""
    if not settings.omps_greenwave_url:
        return None
    return Greenwave(settings.omps_greenwave_url, settings.omps_request_timeout_seconds)


def fetch_archive(nvr: str, settings: Settings) -> bytes:
    """The operator-manifests archive of the Koji build ``nvr`` (steps 1-3)."""
    missing = [
        f"KILN_{name.upper()}"
        for name in ("omps_koji_hub_url", "omps_koji_root_url")
        if not getattr(settings, name)
    ]
    hub = koji_hub(settings)
    if missing or hub is None:
        raise KojiError(f"Koji is not configured on this service ({', '.join(missing)})")
    try:
        build = hub.build(nvr)
        if build is None:
            raise KojiNVRBuildNotFound(f"NVR not found: {nvr}")
        return hub.download(archive_url(hub, build, nvr))
    except KojiUnavailable as exc:
        raise KojiError(str(exc)) from exc


def archive_url(hub: KojiHub, build: dict[str, Any], nvr: str) -> str:
    """Where the build's archive is (step 2)."""
    extra = build.get("extra")
    archive = _dig(extra, "typeinfo", BUILD_TYPE, "archive")
    if archive is not None:
        return hub.url(f"{build_dir(build)}/files/{BUILD_TYPE}/{archive}")
    legacy = _dig(extra, LEGACY_KEY)
    if legacy is None:
        raise KojiNotAnOperatorImage(f"Not an operator image: {nvr}")
    path = hub.log_path(build, str(legacy))
    if path is None:
        raise KojiManifestsArchiveNotFound(
            f"Expected archive '{legacy}' with manifests not found in build: {nvr}"
        )
    return hub.url(path)


def build_dir(build: dict[str, Any]) -> str:
    """The build's directory under the Koji root, as Koji's ``PathInfo.build`` lays it out."""
    volume = build.get("volume_name")
    base = "" if volume in (None, "DEFAULT") else f"vol/{volume}/"
    return f"{base}packages/{build.get('name')}/{build.get('version')}/{build.get('release')}"


def _dig(found: Any, *keys: str) -> Any:
    """``found[k1][k2]...``, or None where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(found, dict) or key not in found:
            return None
        found = found[key]
    return found


def check_greenwave(nvr: str, settings: Settings) -> None:
    """Step 4: the build must satisfy the configured Greenwave policies; without Greenwave
    configured, nothing is asked."""
    service = greenwave(settings)
    if service is None:
        return
    try:
        status, data = service.decision(
            settings.omps_greenwave_context, settings.omps_greenwave_product_version, nvr
        )
    except GreenwaveUnavailable as exc:
        raise GreenwaveError(f"Request failed: {exc}", {}) from exc
    answer = data if data is not None else {}
    if status != 200:
        raise GreenwaveError(f"Greenwave unexpected response code: {status}", answer)
    if not isinstance(answer, dict) or "policies_satisfied" not in answer:
        raise GreenwaveError(f"Missing key 'policies_satisfied' in answer for nvr {nvr}", answer)
    if not answer["policies_satisfied"]:
        raise GreenwaveUnsatisfiedError(f"Policies for nvr {nvr} were not satisfied", answer)
