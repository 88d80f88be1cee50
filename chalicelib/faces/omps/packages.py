"""OMPS face: deleting a package's releases (omps-behaviour.md §1, §10).

``DELETE /omps/v1/{org}/{repo}[/{version}]`` and the same under ``/omps/v2``. Upstream's
routing is plain path matching, so a delete path that looks like another route is still a
delete: ``DELETE /v1/health/ping`` deletes package ``health/ping``, ``DELETE
/v1/<org>/<repo>/zipfile`` its version ``zipfile``. Chalice (like API Gateway) matches a static
segment before a variable one, so each of those static paths gets its DELETE here too, or it
would answer 405."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.container import container
from chalicelib.domain.omps.delete import delete
from chalicelib.faces.omps.routing import OmpsCall, omps_route

bp = Blueprint(__name__)

#: the delete routes, and the static paths of other routes (push, health) that have their shape
PACKAGE_PATHS = [f"/{api}/{{org}}/{{repo}}" for api in ("v1", "v2")]
VERSION_PATHS = [f"/{api}/{{org}}/{{repo}}/{{version}}" for api in ("v1", "v2")]


@omps_route(bp, PACKAGE_PATHS, ["DELETE"])
def delete_package(_principal: None, call: OmpsCall, org: str, repo: str) -> dict[str, Any]:
    return _delete(call, org, repo, None)


@omps_route(bp, VERSION_PATHS, ["DELETE"])
def delete_release(
    _principal: None, call: OmpsCall, org: str, repo: str, version: str
) -> dict[str, Any]:
    return _delete(call, org, repo, version)


@omps_route(bp, ["/v1/health/ping", "/v2/health/ping"], ["DELETE"])
def delete_health_ping(_principal: None, call: OmpsCall) -> dict[str, Any]:
    """``DELETE /v1/health/ping``: package ``ping`` of organization ``health``."""
    return _delete(call, "health", "ping", None)


@omps_route(bp, ["/v2/{org}/zipfile"], ["DELETE"])
def delete_zipfile_package(_principal: None, call: OmpsCall, org: str) -> dict[str, Any]:
    """``DELETE /v2/<org>/zipfile``: every release of package ``zipfile``."""
    return _delete(call, org, "zipfile", None)


@omps_route(bp, ["/v1/{org}/{repo}/zipfile"], ["DELETE"])
def delete_zipfile_version(_principal: None, call: OmpsCall, org: str, repo: str) -> dict[str, Any]:
    """``DELETE /v1/<org>/<repo>/zipfile``: version ``zipfile`` of the package."""
    return _delete(call, org, repo, "zipfile")


@omps_route(bp, ["/v2/{org}/zipfile/{version}"], ["DELETE"])
def delete_zipfile_release(
    _principal: None, call: OmpsCall, org: str, version: str
) -> dict[str, Any]:
    """``DELETE /v2/<org>/zipfile/<version>``: that version of package ``zipfile``."""
    return _delete(call, org, "zipfile", version)


@omps_route(bp, ["/v2/{org}/koji/{nvr}"], ["DELETE"])
def delete_koji_release(_principal: None, call: OmpsCall, org: str, nvr: str) -> dict[str, Any]:
    """``DELETE /v2/<org>/koji/<version>``: that version of package ``koji``."""
    return _delete(call, org, "koji", nvr)


def _delete(call: OmpsCall, org: str, repo: str, version: str | None) -> dict[str, Any]:
    box = container()
    return delete(call.authorization, org, repo, version, box.app_registry, box.settings)
