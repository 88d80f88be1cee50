"""Hostile input on every JSON body of every face, over HTTP through Kiln's local front: each
gets a 4xx in that face's own error format, never a 5xx, and nothing is written. Deep nesting,
lone surrogates, bodies that are not UTF-8, megabyte strings, records past DynamoDB's item
limit, and methods no route has (TRACE, PROPFIND, a known method on the wrong path)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.cachito.helpers import REF, REPO
from tests.ims.helpers import NOOP_RECIPE, SSH_KEY
from tests.served import Served, served_kiln

IMS = "/apis/ims/v3"
COMPOSER = "/api/image-builder-composer/v2"
GLANCE_JSON = "application/json"
PATCH_21 = "application/openstack-images-v2.1-json-patch"
CACHITO = "/api/v1"
OMPS = "/omps"
CNR = "/cnr"
CNR_PUSH = f"{CNR}/api/v1/packages/hostile-org/kiln-demo"
CACHITO_REQUEST = {"repo": REPO, "ref": REF, "pkg_managers": []}


@pytest.fixture(scope="module")
def served(signing_keys: tuple[bytes, str]) -> Iterator[Served]:
    with served_kiln(signing_keys) as running:
        yield running


@pytest.fixture(scope="module")
def ids(served: Served) -> dict[str, str]:
    """One record of each kind to PATCH and to post into."""
    recipe = served.call("POST", f"{IMS}/recipes", NOOP_RECIPE).json()
    image = served.call("POST", f"{IMS}/images", {"name": "i"}).json()
    glance = served.call("POST", "/v2/images", {"name": "g"}).json()
    cachito = served.call("POST", f"{CACHITO}/requests", CACHITO_REQUEST).json()
    return {
        "recipe": recipe["id"],
        "image": image["id"],
        "glance": glance["id"],
        "cachito": str(cachito["id"]),
    }


#: (name, method, path template, content type, role); {recipe} etc. are filled from ``ids``
BODIES = [
    ("ims recipe create", "POST", f"{IMS}/recipes", "application/json", "user"),
    ("ims recipe patch", "PATCH", f"{IMS}/recipes/{{recipe}}", "application/json", "user"),
    ("ims image create", "POST", f"{IMS}/images", "application/json", "user"),
    ("ims image patch", "PATCH", f"{IMS}/images/{{image}}", "application/json", "user"),
    ("ims public key", "POST", f"{IMS}/public-keys", "application/json", "user"),
    ("ims job", "POST", f"{IMS}/jobs", "application/json", "user"),
    ("ims build node", "POST", f"{IMS}/remote-build-nodes", "application/json", "admin"),
    ("ims undelete", "PATCH", f"{IMS}/deleted/recipes", "application/json", "user"),
    ("legacy recipe", "POST", "/apis/ims/recipes", "application/json", "user"),
    ("composer compose", "POST", f"{COMPOSER}/compose", "application/json", "user"),
    ("glance create", "POST", "/v2/images", GLANCE_JSON, "user"),
    ("glance patch", "PATCH", "/v2/images/{glance}", PATCH_21, "user"),
    ("glance member", "POST", "/v2/images/{glance}/members", GLANCE_JSON, "user"),
    ("glance member status", "PUT", "/v2/images/{glance}/members/beta", GLANCE_JSON, "user"),
    ("glance import", "POST", "/v2/images/{glance}/import", GLANCE_JSON, "user"),
    ("glance direct upload", "POST", "/v2/images/{glance}/direct-upload", GLANCE_JSON, "user"),
    (
        "glance direct complete",
        "POST",
        "/v2/images/{glance}/direct-upload/complete",
        GLANCE_JSON,
        "user",
    ),
    ("cachito request", "POST", f"{CACHITO}/requests", "application/json", "user"),
    ("cachito patch", "PATCH", f"{CACHITO}/requests/{{cachito}}", "application/json", "worker"),
    (
        "cachito configuration files",
        "POST",
        f"{CACHITO}/requests/{{cachito}}/configuration-files",
        "application/json",
        "worker",
    ),
    (
        "omps push",
        "POST",
        f"{OMPS}/v2/hostile-org/zipfile",
        "multipart/form-data; boundary=b",
        "user",
    ),
    ("cnr push", "POST", CNR_PUSH, "application/json", "user"),
]
HOSTILE = {
    "array nested 10,000 deep": b"[" * 10000 + b"]" * 10000,
    "object nested 10,000 deep": b'{"a":' * 10000 + b"1" + b"}" * 10000,
    "nested 33 deep": b'{"name": ' + b"[" * 33 + b"]" * 33 + b"}",
    "lone surrogate": b'{"name": "\\ud800", "op": "\\udfff"}',
    "lone surrogate in a key": b'{"\\ud800": "x"}',
    "not UTF-8": b'{"name": "\xff\xfe"}',
    "a 1 MB string": json.dumps({"name": "x" * 1_000_000, "value": "y"}).encode(),
    "a 1 MB key": json.dumps({"k" * 1_000_000: "x"}).encode(),
}


def assert_face_error(response: requests.Response, path: str) -> None:
    """A 4xx in the error format of the face that owns ``path``."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if path.startswith("/apis/ims"):
        assert response.headers["Content-Type"] == "application/problem+json"
        body = response.json()
        assert body["status"] == response.status_code and body["title"] and body["detail"]
    elif path.startswith(CACHITO):
        body = response.json()
        assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    elif path.startswith(OMPS):
        body = response.json()
        assert {"status", "error", "message"} <= set(body) and body[
            "status"
        ] == response.status_code
    elif path.startswith(CNR):
        error = response.json()["error"]
        assert set(error) == {"code", "message", "details"} and error["code"] and error["message"]
    elif path.startswith(COMPOSER):
        body = response.json()
        assert body["kind"] == "Error" and body["code"].startswith("IMAGE-BUILDER-COMPOSER-")
    else:
        body = response.json()
        assert set(body) == {"message", "code", "title"}
        assert body["code"].startswith(str(response.status_code))


@pytest.mark.parametrize("hostile", list(HOSTILE))
@pytest.mark.parametrize("target", BODIES, ids=[b[0] for b in BODIES])
def test_hostile_bodies_get_a_4xx_in_the_faces_format(
    served: Served, ids: dict[str, str], target: tuple[str, ...], hostile: str
) -> None:
    _name, method, template, content_type, role = target
    path = template.format(**ids)
    response = served.call(method, path, HOSTILE[hostile], content_type=content_type, role=role)
    assert_face_error(response, path)


def test_nothing_hostile_was_written(served: Served, ids: dict[str, str]) -> None:
    """Run after the bodies above (same module): only the fixture's records exist."""
    assert [r["id"] for r in served.call("GET", f"{IMS}/recipes").json()] == [ids["recipe"]]
    assert [r["id"] for r in served.call("GET", f"{IMS}/images").json()] == [ids["image"]]
    assert served.call("GET", f"{IMS}/public-keys").json() == []
    assert served.call("GET", f"{IMS}/jobs").json() == []
    images = served.call("GET", "/v2/images").json()["images"]
    assert [i["id"] for i in images] == [ids["glance"]]
    assert images[0]["name"] == "g" and images[0]["status"] == "queued"
    requests_made = served.call("GET", f"{CACHITO}/requests").json()["items"]
    assert [str(r["id"]) for r in requests_made] == [ids["cachito"]]
    request = served.call("GET", f"{CACHITO}/requests/{ids['cachito']}").json()
    assert request["state_history"][-1]["state_reason"] == "The request was initiated"
    config = served.call("GET", f"{CACHITO}/requests/{ids['cachito']}/configuration-files")
    assert config.json() == []
    listed = served.call("GET", f"{CNR}/api/v1/packages?namespace=hostile-org")
    assert listed.status_code == 200 and listed.json() == []


#: text fields over their limits, each refused before anything is written
OVERSIZE = [
    ("POST", f"{IMS}/recipes", {**NOOP_RECIPE, "name": "r" * 256}, 422, "name"),
    (
        "POST",
        f"{IMS}/public-keys",
        {"name": "k", "public_key": SSH_KEY + "x" * 20000},
        422,
        "public_key",
    ),
    (
        "POST",
        f"{IMS}/jobs",
        {
            "job_type": "create",
            "artifact_id": "6f1b2c3d-0000-4000-8000-000000000000",
            "public_key_id": "6f1b2c3d-0000-4000-8000-000000000001",
            "image_root_archive_name": "n" * 256,
        },
        422,
        "image_root_archive_name",
    ),
    (
        "POST",
        f"{IMS}/recipes",
        {**NOOP_RECIPE, "template_dictionary": [{"key": "k", "value": "v" * 1025}]},
        422,
        "template_dictionary",
    ),
    ("POST", f"{IMS}/images", {"name": "i", "metadata": {"k": "v" * 1025}}, 422, "metadata"),
    ("POST", "/v2/images", {"name": "g" * 256}, 400, ""),
    ("POST", "/v2/images", {"name": "g", "note": "v" * 65536}, 400, ""),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), OVERSIZE)
def test_fields_over_their_limits_are_refused(
    served: Served, method: str, path: str, body: Any, status: int, field: str
) -> None:
    before = served.call("GET", path).json()
    response = served.call(method, path, body)
    assert response.status_code == status, response.text[:300]
    assert_face_error(response, path)
    if field:
        assert field in response.json()["errors"]
    assert served.call("GET", path).json() == before


def test_a_glance_image_past_the_item_limit_is_413(served: Served, ids: dict[str, str]) -> None:
    """Seven custom properties of 60,000 characters each are each within Glance's limits; the
    record they would make is not (DynamoDB holds 400 KB an item)."""
    body = {"name": "big", **{f"p{i}": "v" * 60000 for i in range(7)}}
    response = served.call("POST", "/v2/images", body)
    assert response.status_code == 413, response.text[:300]
    assert "at most" in response.json()["message"]
    patch = [{"op": "add", "path": f"/p{i}", "value": "v" * 60000} for i in range(7)]
    response = served.call("PATCH", f"/v2/images/{ids['glance']}", patch, content_type=PATCH_21)
    assert response.status_code == 413, response.text[:300]
    shown = served.call("GET", f"/v2/images/{ids['glance']}").json()
    assert "p0" not in shown


#: (path, a method the path has not) for each face
UNROUTED = [
    (f"{IMS}/recipes", "PUT"),
    ("/apis/ims/recipes", "PUT"),
    ("/apis/ims/v2/jobs", "PATCH"),
    (f"{COMPOSER}/compose", "GET"),
    (f"{COMPOSER}/composes/00000000-0000-4000-8000-000000000000", "DELETE"),
    ("/v2/images", "PUT"),
    ("/v2/images/00000000-0000-4000-8000-000000000000/members", "DELETE"),
    (f"{OMPS}/v2/an-org/zipfile", "GET"),
    (f"{OMPS}/v1/an-org/a-repo", "PUT"),
    (f"{CNR}/api/v1/packages", "PUT"),
]


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "MKCOL", "UNROUTED"])
@pytest.mark.parametrize(("path", "unrouted"), UNROUTED)
def test_methods_a_path_lacks_get_405_with_allow_in_the_faces_format(
    served: Served, path: str, unrouted: str, method: str
) -> None:
    method = unrouted if method == "UNROUTED" else method
    response = served.call(method, path)
    assert response.status_code == 405, (method, path, response.text[:300])
    assert response.headers["Allow"] and method not in response.headers["Allow"].split(", ")
    assert_face_error(response, path)


@pytest.mark.parametrize(
    "path",
    [
        f"{IMS}/recipes/{'a' * 3000}",
        f"{IMS}/images/{'a' * 3000}",
        f"{IMS}/public-keys/{'a' * 3000}",
        f"{IMS}/jobs/{'a' * 3000}",
        f"{IMS}/deleted/recipes/{'a' * 3000}",
        f"{IMS}/remote-build-nodes/{'x' * 3000}",
        f"/apis/ims/images/{'a' * 3000}",
        f"{CNR}/api/v1/packages/an-org/a-package/{'1' * 3000}/helm",
        f"{CNR}/api/v1/packages/{'o' * 3000}/a-package/1.0.0/helm",
    ],
)
def test_ids_longer_than_any_key_are_not_found(served: Served, path: str) -> None:
    """DynamoDB refuses a key of over 2,048 bytes (as the tests' moto now does): such an id
    names no record, so it is a 404, never a 500 from the lookup."""
    for method in ("GET", "DELETE"):
        response = served.call(method, path, role="admin")
        assert response.status_code == 404, (method, response.text[:200])
        assert_face_error(response, path)
