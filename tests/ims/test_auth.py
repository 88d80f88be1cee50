from __future__ import annotations

import time

import jwt
import pytest

from infra.local import tokens
from tests.conftest import Kiln
from tests.ims.helpers import NOOP_RECIPE, V3, public_key, ready_recipe

PROTECTED = [
    ("GET", "/recipes"),
    ("POST", "/recipes"),
    ("GET", "/public-keys"),
    ("POST", "/public-keys"),
    ("GET", "/images"),
    ("POST", "/images"),
    ("GET", "/jobs"),
    ("POST", "/jobs"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_token_is_401(kiln: Kiln, method: str, path: str) -> None:
    response = kiln.call(method, f"{V3}{path}", {"name": "x"}, headers={})
    assert response.status_code == 401
    assert response.json_body["status"] == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def _claims(**changes: object) -> dict:
    now = int(time.time())
    claims = {
        "iss": tokens.ISSUER,
        "aud": tokens.AUDIENCE,
        "sub": "u",
        "tenant": "demo",
        "role": "user",
        "iat": now,
        "exp": now + 60,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    "make_token",
    [
        lambda pem: "not-a-jwt",
        lambda pem: jwt.encode(_claims(exp=int(time.time()) - 10), pem, algorithm="RS256"),
        lambda pem: jwt.encode(_claims(aud="someone-else"), pem, algorithm="RS256"),
        lambda pem: jwt.encode(_claims(iss="evil"), pem, algorithm="RS256"),
        lambda pem: jwt.encode(_claims(tenant=None), pem, algorithm="RS256"),
        lambda pem: jwt.encode(_claims(), "a-shared-secret-of-enough-length!!", algorithm="HS256"),
    ],
    ids=["garbage", "expired", "audience", "issuer", "no-tenant", "wrong-key"],
)
def test_bad_token_is_401(kiln: Kiln, make_token) -> None:
    token = make_token(kiln.private_pem)
    response = kiln.call("GET", f"{V3}/recipes", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_wrong_scheme_is_401(kiln: Kiln) -> None:
    response = kiln.call("GET", f"{V3}/recipes", headers={"Authorization": f"Basic {kiln.token()}"})
    assert response.status_code == 401


def test_unknown_role_is_403(kiln: Kiln) -> None:
    token = jwt.encode(_claims(role="root"), kiln.private_pem, algorithm="RS256")
    response = kiln.call("GET", f"{V3}/recipes", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


def test_healthz_needs_no_token_but_version_does(kiln: Kiln) -> None:
    for path in ("/apis/ims/healthz/ready", "/apis/ims/healthz/live"):
        assert kiln.call("GET", path, headers={}).status_code == 200
    assert kiln.call("GET", "/apis/ims/version", headers={}).status_code == 401
    version = kiln.call("GET", "/apis/ims/version")
    assert version.status_code == 200 and isinstance(version.json_body, str)


def test_tenants_see_only_their_records_and_admin_sees_all(kiln: Kiln) -> None:
    mine = ready_recipe(kiln, tenant="demo")
    theirs = kiln.call("POST", f"{V3}/recipes", NOOP_RECIPE, tenant="other").json_body
    key = public_key(kiln, tenant="other")

    assert [r["id"] for r in kiln.call("GET", f"{V3}/recipes").json_body] == [mine["id"]]
    assert [r["id"] for r in kiln.call("GET", f"{V3}/recipes", tenant="other").json_body] == [
        theirs["id"]
    ]
    admin_view = kiln.call("GET", f"{V3}/recipes", role="admin").json_body
    assert {r["id"] for r in admin_view} == {mine["id"], theirs["id"]}
    # another tenant's record is 404, never 403, whatever the method
    assert kiln.call("GET", f"{V3}/recipes/{theirs['id']}").status_code == 404
    assert (
        kiln.call("PATCH", f"{V3}/recipes/{theirs['id']}", {"arch": "aarch64"}).status_code == 404
    )
    assert kiln.call("GET", f"{V3}/public-keys/{key['id']}").status_code == 404
    assert kiln.call("POST", f"{V3}/recipes/{theirs['id']}/upload").status_code == 404
    assert kiln.call("GET", f"{V3}/recipes/{theirs['id']}", role="admin").status_code == 200
    assert (
        kiln.call("GET", f"{V3}/recipes/{theirs['id']}", tenant="other").json_body["arch"]
        == "x86_64"
    )


def test_build_nodes_are_admin_only(kiln: Kiln) -> None:
    kiln.register_host()
    assert kiln.call("GET", f"{V3}/remote-build-nodes").status_code == 403
    nodes = kiln.call("GET", f"{V3}/remote-build-nodes", role="admin").json_body
    assert nodes[0]["xname"] == "test-host" and "kiln-noop" in nodes[0]["recipe_types"]
    assert (
        kiln.call("GET", "/apis/ims/remote-build-nodes/test-host", role="admin").json_body["arch"]
        == "x86_64"
    )
    assert kiln.call("GET", f"{V3}/remote-build-nodes/nope", role="admin").status_code == 404
