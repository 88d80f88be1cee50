"""The app registry's session routes over HTTP (omps-behaviour.md §14): ``GET /cnr/version``,
``POST /cnr/api/v1/users/login`` (a robot's ``basic`` token, its refusals), and which
Authorization headers the CNR routes take: a Kiln Bearer token, a bare one (what a secret file
holding only the token sends), a robot's ``basic`` token, none (anonymous)."""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import Kiln
from tests.omps import cnr_helpers as c


def test_version_is_anonymous_and_configured(kiln: Kiln) -> None:
    answer = kiln.client.http.get("/cnr/version")
    assert answer.status_code == 200
    assert answer.json_body == {"cnr-api": "0.0.3"}
    kiln.configure(omps_cnr_api_version="0.0.9")
    assert kiln.client.http.get("/cnr/version").json_body == {"cnr-api": "0.0.9"}


def test_login_hands_out_the_robots_basic_token(kiln: Kiln) -> None:
    c.robots(kiln)
    answer = c.login(kiln)
    assert answer.status_code == 200, answer.body
    expected = "basic " + base64.b64encode(b"bot:pw").decode()
    assert answer.json_body == {"token": expected}


@pytest.mark.parametrize(
    "body",
    [
        {"user": {"username": "bot"}},
        {"user": {"password": "pw"}},
        {"user": {"username": "", "password": "pw"}},
        {"user": "bot:pw"},
        {},
        ["not", "an", "object"],
        "{not json",
        "",
    ],
)
def test_login_without_credentials_is_invalid_usage(kiln: Kiln, body: object) -> None:
    c.robots(kiln)
    raw = body if isinstance(body, str) else json.dumps(body)
    answer = kiln.client.http.post(
        "/cnr/api/v1/users/login", headers={"Content-Type": "application/json"}, body=raw
    )
    refused = c.error(answer, 400)
    assert refused["code"] == "invalid-usage"
    assert refused["message"] == "Missing username or password"


@pytest.mark.parametrize(
    ("username", "password"), [("bot", "wrong"), ("nobody", "pw"), ("bot", "pä"), ("bøt", "pw")]
)
def test_login_with_bad_credentials_is_unauthorized(
    kiln: Kiln, username: str, password: str
) -> None:
    c.robots(kiln)
    refused = c.error(c.login(kiln, username, password), 401)
    assert refused["code"] == "unauthorized-access"
    assert refused["message"] == "Invalid Username or Password"


def test_no_robots_configured_means_no_login(kiln: Kiln) -> None:
    assert c.error(c.login(kiln), 401)["code"] == "unauthorized-access"


def test_a_robot_token_pushes_and_reads_as_its_tenant(kiln: Kiln) -> None:
    c.robots(kiln)
    token = c.login(kiln).json_body["token"]
    pushed = c.push(kiln, headers={"Authorization": token})
    assert pushed.status_code == 200, pushed.body
    assert pushed.json_body == {"status": "ok"}
    # the robot's tenant (demo) claimed the namespace: a demo user reads, the beta robot not
    assert c.get(kiln, f"/{c.NAMESPACE}/{c.PACKAGE}").status_code == 200
    beta = c.login(kiln, "other-bot", "pw2").json_body["token"]
    refused = c.error(c.get(kiln, f"/{c.NAMESPACE}/{c.PACKAGE}", {"Authorization": beta}), 403)
    assert refused["details"] == {"package": f"{c.NAMESPACE}/{c.PACKAGE}", "scopes": ["pull"]}


def test_a_bare_token_is_a_bearer_token(kiln: Kiln) -> None:
    pushed = c.push(kiln, headers={"Authorization": kiln.token("demo")})
    assert pushed.status_code == 200, pushed.body
    listed = c.get(kiln, f"?namespace={c.NAMESPACE}", {"Authorization": kiln.token("demo")})
    assert [item["name"] for item in listed.json_body] == [f"{c.NAMESPACE}/{c.PACKAGE}"]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-jwt",
        "not-a-jwt-either",
        "basic !!!not-base64",
        "basic " + base64.b64encode(b"no-colon").decode(),
        "basic " + base64.b64encode(b"bot:wrong").decode(),
    ],
)
def test_credentials_kiln_does_not_know_are_unauthorized(kiln: Kiln, header: str) -> None:
    c.robots(kiln)
    refused = c.error(c.push(kiln, headers={"Authorization": header}), 401)
    assert refused["code"] == "unauthorized-access"
    # reads too: a bad token is not read as anonymous
    listed = c.get(kiln, f"?namespace={c.NAMESPACE}", {"Authorization": header})
    assert c.error(listed, 401)["code"] == "unauthorized-access"


def test_an_anonymous_push_is_unauthorized(kiln: Kiln) -> None:
    refused = c.error(c.push(kiln, headers={}), 401)
    assert refused["code"] == "unauthorized-access"
    assert refused["details"] == {"package": f"{c.NAMESPACE}/{c.PACKAGE}"}


@pytest.mark.parametrize(
    "path", ["/cnr/nothing", "/cnr/api/v2/packages", "/cnr/api/v1/packages/a/b/1.0.0/helm/x/y"]
)
def test_a_path_the_registry_lacks_is_its_404_for_any_caller(kiln: Kiln, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        answer = kiln.client.http.get(path, headers=headers)
        assert answer.status_code == 404, answer.body
        assert answer.json_body["error"]["code"] == "not-found"
    assert kiln.client.http.put("/cnr/api/v1/packages").status_code == 405  # a real path
