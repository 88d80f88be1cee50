"""A second tenant walks every route of every face that takes a tenant's id — enumerated from
the app itself, so a new route is walked too — with the first tenant's ids, over HTTP through
Kiln's local front (the streamed Glance data routes included), with bodies that would succeed
for the owner. Every answer is a 404 (or a 403 where the route is for another role), no answer
carries the owner's data, and the owner's records are unchanged afterwards."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from urllib3 import encode_multipart_formdata

from tests.cachito import helpers as cachito_helpers
from tests.ims.helpers import NOOP_RECIPE, SSH_KEY, put_object
from tests.omps import operators
from tests.omps.cnr_helpers import flat_blob
from tests.served import Served, served_kiln

IMS = "/apis/ims/v3"
COMPOSER = "/api/image-builder-composer/v2"
CACHITO = "/api/v1"
OMPS = "/omps"
CNR = "/cnr"
OWNER_ORG = "owner-org"
PATCH_21 = "application/openstack-images-v2.1-json-patch"
#: routes whose ids are not a tenant's (the error registry, schemas, build nodes: admin only);
#: OMPS's Koji pushes read Koji first (none is configured here: 500 KojiError), and then do what
#: the zipfile pushes walked here do
NOT_TENANT_OWNED = (
    "/errors/{error_id}",
    "/v2/schemas/{name}",
    "/remote-build-nodes/{xname}",  # build nodes and their status: admin only, no tenant's
    "/remote-build-nodes/status/{xname}",
    "/console/{name}",  # the web console's static files: no one's
)
NOT_WALKED = ("/koji/{nvr}", "/koji/{nvr}/{version}")


@pytest.fixture(scope="module")
def served(signing_keys: tuple[bytes, str]) -> Iterator[Served]:
    with served_kiln(signing_keys) as running:
        yield running


def _created(response: requests.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201, 202), response.text[:300]
    return dict(response.json())


@pytest.fixture(scope="module")
def owner(served: Served) -> dict[str, str]:
    """One of everything the owner (tenant demo) can own, by path parameter name."""
    kiln = served.kiln
    kiln.register_host()
    archive = put_object(kiln, "uploads/demo/r.tar.gz", _archive())
    recipe = _created(
        served.call(
            "POST",
            f"{IMS}/recipes",
            {**NOOP_RECIPE, "link": {"path": archive, "type": "s3"}},
        )
    )
    manifest = put_object(kiln, "uploads/demo/manifest.json", b'{"artifacts": []}')
    image = _created(
        served.call(
            "POST", f"{IMS}/images", {"name": "a", "link": {"path": manifest, "type": "s3"}}
        )
    )
    key = _created(served.call("POST", f"{IMS}/public-keys", {"name": "k", "public_key": SSH_KEY}))
    job = _created(
        served.call(
            "POST",
            f"{IMS}/jobs",
            {
                "job_type": "create",
                "artifact_id": recipe["id"],
                "public_key_id": key["id"],
                "image_root_archive_name": "x",
            },
        )
    )
    compose = _created(
        served.call(
            "POST",
            f"{COMPOSER}/compose",
            {
                "distribution": "debian-12",
                "image_request": {
                    "architecture": "x86_64",
                    "image_type": "guest-image",
                    "repositories": [],
                    "upload_options": {},
                },
            },
        )
    )
    glance = _created(
        served.call(
            "POST",
            "/v2/images",
            {"name": "g", "disk_format": "raw", "container_format": "bare"},
        )
    )
    put = served.call(
        "PUT",
        f"/v2/images/{glance['id']}/file",
        b"owner data",
        content_type="application/octet-stream",
    )
    assert put.status_code == 204, put.text
    deleted = {}
    for collection, body in (
        ("recipes", NOOP_RECIPE),
        ("images", {"name": "d"}),
        ("public-keys", {"name": "d", "public_key": SSH_KEY}),
    ):
        record = _created(served.call("POST", f"{IMS}/{collection}", body))
        assert served.call("DELETE", f"{IMS}/{collection}/{record['id']}").status_code == 204
        deleted[collection] = record["id"]
    shared = _created(served.call("POST", "/v2/images", {"name": "s", "visibility": "shared"}))
    _created(served.call("POST", f"/v2/images/{shared['id']}/members", {"member": "gamma"}))
    cachito = _created(served.call("POST", f"{CACHITO}/requests", cachito_helpers.body()))
    cachito_helpers.complete(kiln, cachito["id"])  # its bundle, logs and manifest exist
    body, content_type = _operator_upload()
    pushed = served.call("POST", f"{OMPS}/v2/{OWNER_ORG}/zipfile", body, content_type=content_type)
    assert pushed.status_code == 200, pushed.text  # the owner's tenant claims the organization
    manifest = served.call(
        "GET", f"{CNR}/api/v1/packages/{OWNER_ORG}/{operators.PACKAGE}/1.0.0/helm"
    ).json()
    return {
        "org": OWNER_ORG,
        "namespace": OWNER_ORG,
        "repo": operators.PACKAGE,
        "package": operators.PACKAGE,
        "version": "1.0.0",
        "release": "1.0.0",
        "media_type": "helm",
        "digest": manifest["content"]["digest"],
        **{f"unknown{i}": "x" for i in range(1, 10)},  # the faces' catch-all routes
        "recipe_id": recipe["id"],
        "image_id": image["id"],
        "public_key_id": key["id"],
        "job_id": job["id"],
        "build_id": job["id"],  # Kiln's own builds API: the same job, every face's
        "compose_id": compose["id"],
        "glance_id": glance["id"],
        "shared_glance_id": shared["id"],
        "member_id": "gamma",
        "deleted_recipes": deleted["recipes"],
        "deleted_images": deleted["images"],
        "deleted_public-keys": deleted["public-keys"],
        "tag": "t",
        "request_id": str(cachito["id"]),
    }


def _operator_upload() -> tuple[bytes, str]:
    """An OMPS push's multipart body (field ``file``) and its content type."""
    return encode_multipart_formdata({"file": ("m.zip", operators.flat_operator())})


def _archive() -> bytes:
    from tests.conftest import make_archive

    return make_archive({"recipe.yaml": "name: noop\n"})


def _routes(served: Served) -> list[tuple[str, str]]:
    import app as app_module

    found = []
    for path, methods in app_module.app.routes.items():
        if (
            "{" in path
            and not any(path.endswith(suffix) for suffix in NOT_TENANT_OWNED)
            and not any(path.endswith(suffix) for suffix in NOT_WALKED)
        ):
            found += [(path, method) for method in sorted(methods)]
    return sorted(found)


#: a body the owner could send to each route (by method and the path's last words)
def _body(path: str, method: str) -> tuple[Any, str]:
    if path.startswith(OMPS) and method == "POST":
        return _operator_upload()
    if path.startswith(CNR) and method == "POST":
        blob = base64.b64encode(flat_blob()).decode()
        return {"blob": blob, "release": "9.0.0", "media_type": "helm"}, "application/json"
    if path.startswith(CACHITO):
        if method == "PATCH":
            return {"state": "failed", "state_reason": "stolen"}, "application/json"
        if path.endswith("/configuration-files"):
            return [{"content": "eA==", "path": "app/x", "type": "base64"}], "application/json"
        return None, "application/json"
    if path.startswith("/v2/images"):
        if method == "PATCH":
            return [{"op": "replace", "path": "/name", "value": "stolen"}], PATCH_21
        if path.endswith(("/file", "/stage")):
            return b"beta's bytes", "application/octet-stream"
        if path.endswith("/members"):
            return {"member": "beta"}, "application/json"
        if path.endswith("/members/{member_id}"):
            return {"status": "accepted"}, "application/json"
        if path.endswith("/import"):
            return {"method": {"name": "glance-direct"}}, "application/json"
        if path.endswith("/complete"):
            return {"parts": []}, "application/json"
        return ({} if method == "POST" else None), "application/json"
    if "/deleted/" in path and method == "PATCH":
        return {"operation": "undelete"}, "application/json"
    if method == "PATCH":
        return (
            {"status": "error"} if "/jobs/" in path else {"arch": "aarch64"}
        ), "application/json"
    return ({} if method == "POST" else None), "application/json"


def _for_another_role(path: str, method: str) -> bool:
    """Routes for another role than a user's answer 403 before looking the id up: a job's
    PATCH (build hosts), a Cachito request's PATCH and added configuration files (workers);
    OMPS and the app registry answer 403 for another tenant's organization, as Quay does for a
    repository the caller may not use (the same for a package that does not exist)."""
    if "/jobs/" in path and method == "PATCH":
        return True
    if path.startswith((OMPS, CNR)):  # Quay's answer for a repository the caller may not use
        return True
    return path.startswith(CACHITO) and method in ("PATCH", "POST")


def _concrete(path: str, owner: dict[str, str], shared: bool) -> str:
    values = dict(owner)
    kind = re.search(r"/deleted/([\w-]+)/", path)
    if kind:  # a soft-deleted record of that kind
        values[f"{kind.group(1)[:-1].replace('-', '_')}_id"] = owner[f"deleted_{kind.group(1)}"]
    if path.startswith("/v2/images"):
        values["image_id"] = owner["shared_glance_id" if shared else "glance_id"]
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def _snapshot(served: Served, owner: dict[str, str]) -> dict[str, Any]:
    paths = [
        f"{IMS}/recipes/{owner['recipe_id']}",
        f"{IMS}/images/{owner['image_id']}",
        f"{IMS}/public-keys/{owner['public_key_id']}",
        f"{IMS}/jobs/{owner['job_id']}",
        f"{COMPOSER}/composes/{owner['compose_id']}",
        f"/v2/images/{owner['glance_id']}",
        f"/v2/images/{owner['shared_glance_id']}",
        f"/v2/images/{owner['shared_glance_id']}/members",
        f"/v2/images/{owner['glance_id']}/file",
        f"{IMS}/deleted/recipes/{owner['deleted_recipes']}",
        f"{IMS}/deleted/images/{owner['deleted_images']}",
        f"{IMS}/deleted/public-keys/{owner['deleted_public-keys']}",
        f"{CACHITO}/requests/{owner['request_id']}",
        f"{CACHITO}/requests/{owner['request_id']}/configuration-files",
        f"{CACHITO}/requests/{owner['request_id']}/environment-variables",
        f"{CACHITO}/requests/{owner['request_id']}/download",
        f"{CACHITO}/requests/{owner['request_id']}/logs",
        f"{CNR}/api/v1/packages/{OWNER_ORG}/{operators.PACKAGE}",
    ]
    found = {path: served.call("GET", path) for path in paths}
    assert all(answer.status_code == 200 for answer in found.values()), found
    return {path: answer.content for path, answer in found.items()}


def test_a_second_tenant_reaches_nothing_by_id(served: Served, owner: dict[str, str]) -> None:
    before = _snapshot(served, owner)
    routes = _routes(served)
    assert len(routes) > 60  # every face, every prefix
    walked = []
    for path, method in routes:
        for shared in (False, True) if path.startswith("/v2/images") else (False,):
            concrete = _concrete(path, owner, shared)
            body, content_type = _body(path, method)
            response = served.call(method, concrete, body, tenant="beta", content_type=content_type)
            walked.append((method, concrete, response.status_code))
            allowed = {403, 404} if _for_another_role(path, method) else {404}
            assert response.status_code in allowed, (method, concrete, response.text[:300])
            for name in ("owner data", '"name": "g"', '"name":"a"', "retrodep"):
                assert name not in response.text, (method, concrete)
    assert _snapshot(served, owner) == before, walked
