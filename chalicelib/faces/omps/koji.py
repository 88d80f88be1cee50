"""OMPS face: pushes from Koji (omps-behaviour.md §1, §3, §9).

``POST /omps/v1/{org}/{repo}/koji/{nvr}[/{version}]`` and ``POST /omps/v2/{org}/koji/{nvr}
[/{version}]`` (v2: the repo is the manifests' package name). In order: the Authorization
header is present; the request body is within ``omps_max_content_length`` (413, enforced on
every push route, §15.1, though a koji push sends none); the build's archive is fetched from
Koji and the build passes Greenwave, when configured (domain/omps/koji_source.py); then the
common push flow takes the archive as it takes an upload (domain/omps/push.py), and its 200
body adds ``"nvr"``."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.container import container
from chalicelib.domain.omps import koji_source
from chalicelib.domain.omps.errors import RequestEntityTooLarge
from chalicelib.domain.omps.push import PushRequest, push, require_authorization
from chalicelib.faces.omps.routing import STANDARD, OmpsCall, omps_route

bp = Blueprint(__name__)


@omps_route(bp, ["/v1/{org}/{repo}/koji/{nvr}", "/v1/{org}/{repo}/koji/{nvr}/{version}"], ["POST"])
def push_koji_v1(
    _principal: None, call: OmpsCall, org: str, repo: str, nvr: str, version: str | None = None
) -> dict[str, Any]:
    return push_build(call, org, repo, nvr, version)


@omps_route(bp, ["/v2/{org}/koji/{nvr}", "/v2/{org}/koji/{nvr}/{version}"], ["POST"])
def push_koji_v2(
    _principal: None, call: OmpsCall, org: str, nvr: str, version: str | None = None
) -> dict[str, Any]:
    return push_build(call, org, None, nvr, version)


def push_build(
    call: OmpsCall, org: str, repo: str | None, nvr: str, version: str | None
) -> dict[str, Any]:
    """The push of the Koji build ``nvr``'s operator manifests; ``repo`` None: v2."""
    authorization = require_authorization(call.authorization)
    box = container()
    if len(call.raw_body) > box.settings.omps_max_content_length:
        raise RequestEntityTooLarge(STANDARD[413][1])
    archive = koji_source.fetch_archive(nvr, box.settings)
    koji_source.check_greenwave(nvr, box.settings)
    request = PushRequest(authorization, org, repo, version, archive, nvr=nvr)
    return push(request, box.app_registry, box.settings)
