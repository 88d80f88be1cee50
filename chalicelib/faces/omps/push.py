"""OMPS face: pushes of an uploaded zip (omps-behaviour.md §1, §3, §4).

``POST /omps/v1/{org}/{repo}/zipfile[/{version}]`` and ``POST /omps/v2/{org}/zipfile[/{version}]``
(v2: the repo is the package name). The checks come in upstream's order: the Authorization
header first, then the request body's size (over ``omps_max_content_length``, 2 MiB: 413,
always enforced, §15.1), the multipart field ``file``, its file name's extension, and then the
push itself (domain/omps/push.py)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.container import container
from chalicelib.domain.omps import archive
from chalicelib.domain.omps.errors import RequestEntityTooLarge
from chalicelib.domain.omps.push import PushRequest, push, require_authorization
from chalicelib.faces.omps import multipart
from chalicelib.faces.omps.routing import STANDARD, OmpsCall, omps_route

bp = Blueprint(__name__)


@omps_route(bp, ["/v1/{org}/{repo}/zipfile", "/v1/{org}/{repo}/zipfile/{version}"], ["POST"])
def push_zipfile_v1(
    _principal: None, call: OmpsCall, org: str, repo: str, version: str | None = None
) -> dict[str, Any]:
    return push_upload(call, org, repo, version)


@omps_route(bp, ["/v2/{org}/zipfile", "/v2/{org}/zipfile/{version}"], ["POST"])
def push_zipfile_v2(
    _principal: None, call: OmpsCall, org: str, version: str | None = None
) -> dict[str, Any]:
    return push_upload(call, org, None, version)


def push_upload(call: OmpsCall, org: str, repo: str | None, version: str | None) -> dict[str, Any]:
    """The push of the zip uploaded in ``call``; ``repo`` None: v2."""
    authorization = require_authorization(call.authorization)
    box = container()
    if len(call.raw_body) > box.settings.omps_max_content_length:
        raise RequestEntityTooLarge(STANDARD[413][1])
    upload = multipart.uploaded_file(call)
    archive.check_file_name(upload.filename)
    request = PushRequest(authorization, org, repo, version, upload.content)
    return push(request, box.app_registry, box.settings)
