"""Kiln's own builds API (``/kiln/v1/builds``, docs/kiln-api.md): every face's builds in one
list, one build with its stages, artifacts and proofs, its log, cancelling it; driven as the
hosts drive jobs (objects in S3, then the result on the build-events queue)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import requests

from chalicelib.host_protocol import MediaType
from tests.builds.test_provenance import message_of, published, result
from tests.cachito import helpers as cachito
from tests.composer.helpers import compose_body, image
from tests.conftest import Kiln
from tests.ims.helpers import V3, public_key, ready_recipe

BUILDS = "/kiln/v1/builds"
PROBLEM = "application/problem+json"
ROOTFS = b"hsqs" + bytes(range(256)) * 16


def ims_job(kiln: Kiln, name: str = "my-image", tenant: str = "demo") -> dict[str, Any]:
    recipe, key = ready_recipe(kiln, tenant=tenant), public_key(kiln, tenant=tenant)
    body = {"job_type": "create", "artifact_id": recipe["id"], "public_key_id": key["id"],
            "image_root_archive_name": name}  # fmt: skip
    response = kiln.call("POST", f"{V3}/jobs", body, tenant=tenant)
    assert response.status_code == 201, response.body
    return dict(response.json_body)


def get(kiln: Kiln, path: str, tenant: str = "demo", role: str = "user") -> Any:
    return kiln.call("GET", path, tenant=tenant, role=role)


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.body
    assert response.headers["Content-Type"] == PROBLEM
    body = dict(response.json_body)
    assert body["status"] == status and body["type"] == "about:blank"
    return body


@pytest.fixture
def host(kiln: Kiln) -> Kiln:
    kiln.register_host()
    kiln.register_host("aarch64", xname="arm-host")
    return kiln


def test_every_face_s_builds_are_in_one_list_newest_first(host: Kiln) -> None:
    first = ims_job(host, "first")
    compose = host.call("POST", "/api/image-builder-composer/v2/compose", compose_body(image()))
    assert compose.status_code == 201, compose.body
    request = cachito.create(host)
    listed = get(host, BUILDS).json_body
    builds = listed["builds"]
    assert listed["next_marker"] is None
    assert [b["face"] for b in builds] == ["cachito", "composer", "ims"]
    by_face = {b["face"]: b for b in builds}
    assert by_face["ims"]["id"] == first["id"] and by_face["ims"]["name"] == "first"
    assert by_face["ims"]["face_url"] == f"/apis/ims/v3/jobs/{first['id']}"
    assert by_face["ims"]["kind"] == "ims-create" and by_face["ims"]["tenant"] == "demo"
    assert by_face["composer"]["name"] == "guest-image"
    assert by_face["composer"]["face_url"].endswith(f"/composes/{compose.json_body['id']}")
    assert by_face["cachito"]["face_url"] == f"/api/v1/requests/{request['id']}"
    assert by_face["cachito"]["name"].startswith(cachito.REPO + "@")
    for build in builds:
        assert build["phase"] in ("queued", "running", "error")
        assert build["created"] and build["finished"] is None or build["phase"] == "error"
    # the face's own record is where face_url says
    assert get(host, by_face["ims"]["face_url"]).status_code == 200


def test_filters_and_pages(host: Kiln) -> None:
    made = [ims_job(host, f"image-{i}")["id"] for i in range(5)]
    host.call("POST", "/api/image-builder-composer/v2/compose", compose_body(image()))
    ims_only = get(host, f"{BUILDS}?face=ims").json_body["builds"]
    assert [b["id"] for b in ims_only] == made[::-1]
    seen, marker = [], None
    while True:
        page = get(host, f"{BUILDS}?face=ims&limit=2" + (f"&marker={marker}" if marker else ""))
        seen += [b["id"] for b in page.json_body["builds"]]
        marker = page.json_body["next_marker"]
        if marker is None:
            break
    assert seen == made[::-1]
    assert get(host, f"{BUILDS}?arch=aarch64&face=ims").json_body["builds"] == []
    phase = {b["phase"] for b in get(host, f"{BUILDS}?face=ims").json_body["builds"]}
    queued = get(host, f"{BUILDS}?phase={phase.pop()}&face=ims").json_body["builds"]
    assert len(queued) == 5
    assert get(host, f"{BUILDS}?status=success").json_body["builds"] == []


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("face=glance", "face must be one of ims, composer, cachito"),
        ("status=done", "status must be one of"),
        ("phase=later", "phase must be one of"),
        ("arch=sparc", "arch must be one of"),
        ("limit=0", "limit must be a whole number from 1 to 200"),
        ("limit=201", "limit must be a whole number from 1 to 200"),
        ("limit=ten", "limit must be a whole number"),
        ("colour=red", "unknown query parameter 'colour'"),
    ],
)
def test_a_bad_filter_is_400_naming_it(kiln: Kiln, query: str, detail: str) -> None:
    body = problem(get(kiln, f"{BUILDS}?{query}"), 400)
    assert detail in body["detail"] and body["title"] == "Bad Request"


def test_an_unknown_marker_or_build_is_404(kiln: Kiln) -> None:
    assert "build nope not found" in problem(get(kiln, f"{BUILDS}?marker=nope"), 404)["detail"]
    for path in ("", "/log"):
        problem(get(kiln, f"{BUILDS}/nope{path}"), 404)
    problem(kiln.call("POST", f"{BUILDS}/nope/cancel"), 404)


def test_no_token_or_a_bad_one_is_401(kiln: Kiln) -> None:
    problem(kiln.call("GET", BUILDS, headers={}), 401)
    problem(kiln.call("GET", BUILDS, headers={"Authorization": "Bearer not-a-jwt"}), 401)


def test_tenants_see_their_own_and_admins_every_tenant(host: Kiln) -> None:
    mine, theirs = ims_job(host, tenant="demo"), ims_job(host, tenant="beta")
    assert [b["id"] for b in get(host, BUILDS).json_body["builds"]] == [mine["id"]]
    problem(get(host, f"{BUILDS}/{theirs['id']}"), 404)
    problem(get(host, f"{BUILDS}/{theirs['id']}/log"), 404)
    problem(host.call("POST", f"{BUILDS}/{theirs['id']}/cancel"), 404)
    admin = get(host, BUILDS, role="admin").json_body["builds"]
    assert {b["id"] for b in admin} == {mine["id"], theirs["id"]}
    assert get(host, f"{BUILDS}/{theirs['id']}", role="admin").status_code == 200


def test_a_built_job_shows_stages_artifacts_sboms_provenance_and_log(host: Kiln) -> None:
    job = ims_job(host)
    message = message_of(host, job["id"])
    files = {
        "my-image.squashfs": (MediaType.ROOTFS_SQUASHFS, ROOTFS),
        "sbom.cdx.json": (MediaType.SBOM_CYCLONEDX, b'{"bomFormat": "CycloneDX"}'),
        "sbom.spdx.json": (MediaType.SBOM_SPDX, b'{"spdxVersion": "SPDX-2.3"}'),
    }
    artifacts, manifest = published(host, files, message)
    built = result(message, artifacts, manifest)
    built["output"]["timings"] = {"fetch": 1.0, "build": 20.0, "package": 2.0}
    host.build_events(built)
    build = get(host, f"{BUILDS}/{job['id']}").json_body
    assert build["status"] == "success" and build["phase"] == "success"
    walked = [step["status"] for step in build["steps"]]
    assert walked[0] == "creating" and walked[-1] == "success"
    assert all(step["seconds"] >= 0 for step in build["steps"][:-1])
    assert build["steps"][-1]["seconds"] is None  # an ended build's last status has no length
    assert [s["name"] for s in build["stages"]] == ["queue_wait", "fetch", "build", "package"]
    assert (
        build["image_id"]
        == host.call("GET", f"{V3}/jobs/{job['id']}").json_body["resultant_image_id"]
    )
    rootfs = next(a for a in build["artifacts"] if a["name"] == "my-image.squashfs")
    assert rootfs["sha256"] == hashlib.sha256(ROOTFS).hexdigest() and rootfs["size"] == len(ROOTFS)
    assert requests.get(rootfs["download_url"], timeout=10).content == ROOTFS
    assert set(build["sbom"]) == {"cyclonedx-1.6", "spdx-2.3"}
    assert requests.get(build["sbom"]["spdx-2.3"], timeout=10).json()["spdxVersion"] == "SPDX-2.3"
    envelope = requests.get(build["provenance"], timeout=10).json()
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert build["log_url"] == f"{BUILDS}/{job['id']}/log"
    log = get(host, build["log_url"]).json_body
    assert log == {"text": "I: built\n", "offset": 0, "size": 9, "streaming": False}
    assert get(host, f"{build['log_url']}?offset=3").json_body["text"] == "built\n"
    assert get(host, f"{build['log_url']}?offset=99").json_body["text"] == ""
    problem(get(host, f"{build['log_url']}?offset=-1"), 400)
    assert get(host, f"{BUILDS}?phase=success").json_body["builds"][0]["id"] == job["id"]


def test_a_running_job_streams_its_log_and_shows_no_artifacts(host: Kiln) -> None:
    job = ims_job(host)
    build = get(host, f"{BUILDS}/{job['id']}").json_body
    assert build["artifacts"] == [] and build["sbom"] is None and build["provenance"] is None
    assert build["stages"] == [] and build["finished"] is None
    (step,) = build["steps"]  # no host has taken it yet: still creating, for as long as it lasts
    assert step["status"] == "creating" and step["started"] == build["created"]
    assert step["seconds"] >= 0
    log = get(host, build["log_url"]).json_body
    assert log["streaming"] is True and log["size"] == 0


def test_cancel_ends_a_build_once_and_its_face_shows_it(host: Kiln) -> None:
    job = ims_job(host)
    cancelled = host.call("POST", f"{BUILDS}/{job['id']}/cancel")
    assert cancelled.status_code == 202, cancelled.body
    assert cancelled.json_body["status"] == "error" and cancelled.json_body["phase"] == "error"
    assert "cancelled" in cancelled.json_body["status_reason"]
    assert host.call("GET", f"{V3}/jobs/{job['id']}").json_body["status"] == "error"
    again = problem(host.call("POST", f"{BUILDS}/{job['id']}/cancel"), 409)
    assert "already ended in error" in again["detail"]


def test_cancelling_a_cachito_request_fails_the_request(host: Kiln) -> None:
    request = cachito.create(host)
    (build,) = get(host, f"{BUILDS}?face=cachito").json_body["builds"]
    assert host.call("POST", f"{BUILDS}/{build['id']}/cancel").status_code == 202
    shown = cachito.get(host, f"/requests/{request['id']}").json_body
    assert shown["state"] == "failed"
