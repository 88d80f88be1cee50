"""Glance's error bodies, authentication, version discovery, schemas and /v2/info/import."""

from __future__ import annotations

from typing import Any

import pytest

from tests.glance.conftest import Glance

MISSING = "/v2/images/12345678-1234-1234-1234-1234567890ab"


def test_error_body_is_json_when_json_is_accepted(glance: Glance) -> None:
    response = glance.call("GET", MISSING)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json_body
    assert body["code"] == "404 Not Found" and body["title"] == "Not Found"
    assert "12345678-1234-1234-1234-1234567890ab" in body["message"]


@pytest.mark.parametrize("accept", [None, "text/plain", "*/*"])
def test_error_body_is_plain_text_otherwise(glance: Glance, accept: str | None) -> None:
    headers = {"X-Auth-Token": glance.kiln.token("alpha")}
    if accept:
        headers["Accept"] = accept
    response = glance.call("GET", MISSING, headers=headers)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.body.decode().startswith("404 Not Found")


def test_other_statuses_carry_their_code_and_title(glance: Glance) -> None:
    conflict = glance.call("POST", "/v2/images", {"status": "active"})
    assert conflict.json_body["code"] == "403 Forbidden"
    assert conflict.json_body["title"] == "Forbidden"
    bad = glance.call("GET", "/v2/images?limit=x")
    assert bad.json_body["code"] == "400 Bad Request"
    assert bad.json_body["title"] == "Bad Request"


def test_no_token_is_401(glance: Glance) -> None:
    response = glance.call("GET", "/v2/images", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.json_body["code"] == "401 Unauthorized"
    assert "WWW-Authenticate" in response.headers


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Auth-Token": "garbage"},
        {"Authorization": "Bearer garbage"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
def test_bad_token_is_401(glance: Glance, headers: dict[str, str]) -> None:
    response = glance.call("GET", "/v2/images", headers={"Accept": "application/json", **headers})
    assert response.status_code == 401


@pytest.mark.parametrize("scheme", ["X-Auth-Token", "Authorization"])
def test_either_token_header_works(glance: Glance, scheme: str) -> None:
    made = glance.create(name="mine")
    token = glance.kiln.token("alpha")
    value = token if scheme == "X-Auth-Token" else f"Bearer {token}"
    response = glance.call("GET", "/v2/images", headers={scheme: value})
    assert response.status_code == 200
    assert [i["id"] for i in response.json_body["images"]] == [made["id"]]


def test_root_is_300_multiple_choices_with_versions(glance: Glance) -> None:
    response = glance.call("GET", "/", headers={})
    assert response.status_code == 300
    versions = response.json_body["versions"]
    current = [v for v in versions if v["status"] == "CURRENT"]
    assert len(current) == 1 and current[0]["id"].startswith("v2.")
    assert all(v["links"][0]["rel"] == "self" for v in versions)


def test_versions_is_200(glance: Glance) -> None:
    response = glance.call("GET", "/versions", headers={})
    assert response.status_code == 200
    assert {v["id"] for v in response.json_body["versions"]} >= {"v2.0", "v2.1"}


@pytest.mark.parametrize("name", ["image", "images", "member", "members"])
def test_schemas(glance: Glance, name: str) -> None:
    response = glance.call("GET", f"/v2/schemas/{name}")
    assert response.status_code == 200
    assert response.json_body["name"] == name


def test_unknown_schema_is_404(glance: Glance) -> None:
    assert glance.call("GET", "/v2/schemas/flavor").status_code == 404


def test_schemas_need_a_token(glance: Glance) -> None:
    assert glance.call("GET", "/v2/schemas/image", headers={}).status_code == 401


def test_import_info_lists_the_methods(glance: Glance) -> None:
    response = glance.call("GET", "/v2/info/import")
    assert response.status_code == 200
    methods: Any = response.json_body["import-methods"]
    assert set(methods["value"]) == {"glance-direct", "web-download"}
    assert methods["type"] == "array"
