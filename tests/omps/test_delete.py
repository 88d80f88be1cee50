"""OMPS deletes (omps-behaviour.md §10, §15.6): one version, every version (newest first,
invalid ones included, partial progress named on failure), the registry's refusals, and the
delete paths that look like other routes (§1)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.adapters.appregistry_models import AppPackageModel
from chalicelib.container import container
from chalicelib.domain.appregistry.callers import caller_from
from chalicelib.domain.appregistry.errors import RegistryError
from chalicelib.domain.appregistry.releases import AppRegistry
from tests.conftest import Kiln
from tests.omps import operators as ops
from tests.omps.operators import PACKAGE, assert_error, post_zip

ORG = "acme"
NAME = f"{ORG}/{PACKAGE}"


def delete(kiln: Kiln, path: str, authorization: str | None = "") -> Any:
    token = kiln.token() if authorization == "" else authorization
    headers = {} if token is None else {"Authorization": token}
    return kiln.client.http.delete(f"/omps{path}", headers=headers)


def publish(kiln: Kiln, *versions: str, package: str = PACKAGE) -> None:
    """Releases of ``package`` (tenant demo), through the registry: any release string."""
    caller = caller_from(kiln.token(), container().settings)
    for version in versions:
        container().app_registry.publish(caller, ORG, package, b"tar.gz", release=version)


def deleted(response: Any, repo: str = PACKAGE, org: str = ORG) -> list[str]:
    assert response.status_code == 200, response.body
    body = response.json_body
    assert (body["organization"], body["repo"]) == (org, repo), body
    assert sorted(body) == ["deleted", "organization", "repo"]
    versions: list[str] = body["deleted"]
    return versions


# -- one version ----------------------------------------------------------------------------------
def test_one_version_is_deleted(kiln: Kiln) -> None:
    pushed = post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator())
    assert pushed.status_code == 200, pushed.body
    publish(kiln, "2.0.0")
    assert deleted(delete(kiln, f"/v1/{ORG}/{PACKAGE}/1.0.0")) == ["1.0.0"]
    assert ops.release_names(ORG, PACKAGE) == ["2.0.0"]
    assert deleted(delete(kiln, f"/v2/{ORG}/{PACKAGE}/2.0.0")) == ["2.0.0"]
    assert ops.release_names(ORG, PACKAGE) == []


@pytest.mark.parametrize("version", ["7.7.7", "not-a-version"])
def test_a_missing_version_is_404_with_the_registry_s_message(kiln: Kiln, version: str) -> None:
    publish(kiln, "1.0.0")
    message = f"package {NAME} doesn't exist, v: {version}, type: helm"
    for api in ("v1", "v2"):
        response = delete(kiln, f"/{api}/{ORG}/{PACKAGE}/{version}")
        assert_error(response, 404, "QuayPackageNotFound", message)


def test_another_tenant_s_delete_of_one_version_is_403(kiln: Kiln) -> None:
    """Issue 13 part 4: another tenant's delete is a 403 QuayAuthorizationError and changes
    nothing, whether the version exists or not (nothing says which)."""
    publish(kiln, "1.0.0")
    for version in ("1.0.0", "7.7.7"):
        response = delete(kiln, f"/v1/{ORG}/{PACKAGE}/{version}", kiln.token("other"))
        assert response.status_code == 403, response.body
        body = response.json_body
        assert (body["error"], body["message"]) == (
            "QuayAuthorizationError",
            f"Unauthorized access for: {NAME}",
        )
        assert body["quay_response"]["error"]["code"] == "forbidden"
    assert ops.release_names(ORG, PACKAGE) == ["1.0.0"]


def test_a_token_kiln_does_not_know_is_403(kiln: Kiln) -> None:
    """§15.8: a bad token is 403 QuayAuthorizationError, not a 500."""
    publish(kiln, "1.0.0")
    for path in (f"/v1/{ORG}/{PACKAGE}/1.0.0", f"/v1/{ORG}/{PACKAGE}"):
        response = delete(kiln, path, "Bearer not-a-token")
        assert response.status_code == 403, response.body
        body = response.json_body
        assert body["error"] == "QuayAuthorizationError"
        assert "Invalid credentials" in body["message"]
        assert body["quay_response"]["error"]["code"] == "unauthorized-access"
    assert ops.release_names(ORG, PACKAGE) == ["1.0.0"]


@pytest.mark.parametrize(
    "path", [f"/v1/{ORG}/{PACKAGE}", f"/v2/{ORG}/{PACKAGE}/1.0.0", "/v1/health/ping"]
)
def test_the_authorization_header_is_required(kiln: Kiln, path: str) -> None:
    publish(kiln, "1.0.0")
    message = "Request contains no 'Authorization' header"
    assert_error(delete(kiln, path, None), 403, "OMPSAuthorizationHeaderRequired", message)
    assert ops.release_names(ORG, PACKAGE) == ["1.0.0"]


# -- every version --------------------------------------------------------------------------------
def test_every_version_is_deleted_newest_first_and_the_package_kept(kiln: Kiln) -> None:
    for _ in range(3):
        assert post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator()).status_code == 200
    assert deleted(delete(kiln, f"/v1/{ORG}/{PACKAGE}")) == ["3.0.0", "2.0.0", "1.0.0"]
    assert ops.release_names(ORG, PACKAGE) == []
    assert AppPackageModel.get(ORG, PACKAGE).release_count == 0  # the emptied repo is kept
    message = f"Package {NAME} not found"
    assert_error(delete(kiln, f"/v2/{ORG}/{PACKAGE}"), 404, "QuayPackageNotFound", message)
    pushed = post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator())
    assert pushed.json_body["version"] == "1.0.0"


def test_versions_omps_would_refuse_are_deleted_too(kiln: Kiln) -> None:
    publish(kiln, "1.0.0", "9.0.0-rc1")
    assert deleted(delete(kiln, f"/v2/{ORG}/{PACKAGE}")) == ["9.0.0-rc1", "1.0.0"]


def test_an_unknown_package_is_404(kiln: Kiln) -> None:
    message = f"Package {ORG}/nothing not found"
    assert_error(delete(kiln, f"/v1/{ORG}/nothing"), 404, "QuayPackageNotFound", message)


def test_another_tenant_cannot_list_the_package_to_delete_it(kiln: Kiln) -> None:
    publish(kiln, "1.0.0", "2.0.0")
    response = delete(kiln, f"/v2/{ORG}/{PACKAGE}", kiln.token("other"))
    registry_message = f"Unauthorized access for: {NAME}"
    assert_error(
        response,
        403,
        "QuayAuthorizationError",
        f"Cannot retrieve information about package {NAME}: {registry_message}",
        quay_response={
            "error": {
                "code": "forbidden",
                "message": registry_message,
                "details": {"package": NAME, "scopes": ["pull"]},
            }
        },
    )
    assert ops.release_names(ORG, PACKAGE) == ["1.0.0", "2.0.0"]


def test_a_delete_that_fails_part_way_names_what_it_deleted(
    kiln: Kiln, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§15.6: upstream stops at the first failure without saying what was deleted."""
    publish(kiln, "1.0.0", "2.0.0", "3.0.0")
    real_delete = AppRegistry.delete
    calls: list[str] = []

    def failing_second(
        self: AppRegistry, caller: Any, ns: str, pkg: str, release: str, *a: Any
    ) -> Any:
        calls.append(release)
        if len(calls) == 2:
            raise RegistryError("the registry is down")
        return real_delete(self, caller, ns, pkg, release, *a)

    monkeypatch.setattr(AppRegistry, "delete", failing_second)
    response = delete(kiln, f"/v1/{ORG}/{PACKAGE}")
    assert_error(response, 500, "QuayPackageError", "the registry is down", deleted=["3.0.0"])
    assert ops.release_names(ORG, PACKAGE) == ["1.0.0", "2.0.0"]


# -- paths that look like other routes (§1: routing is plain path matching) -----------------------
def test_delete_health_ping_deletes_package_ping_of_org_health(kiln: Kiln) -> None:
    for api in ("v1", "v2"):
        response = delete(kiln, f"/{api}/health/ping")
        assert_error(response, 404, "QuayPackageNotFound", "Package health/ping not found")


def test_delete_v1_repo_zipfile_deletes_version_zipfile(kiln: Kiln) -> None:
    publish(kiln, "1.0.0")
    message = f"package {NAME} doesn't exist, v: zipfile, type: helm"
    assert_error(delete(kiln, f"/v1/{ORG}/{PACKAGE}/zipfile"), 404, "QuayPackageNotFound", message)


def test_v2_zipfile_and_koji_paths_delete_packages_so_named(kiln: Kiln) -> None:
    kiln.configure(omps_organizations=json.dumps({}))
    publish(kiln, "1.0.0", "2.0.0", package="zipfile")
    publish(kiln, "1.0.0", package="koji")
    assert deleted(delete(kiln, f"/v2/{ORG}/zipfile/1.0.0"), "zipfile") == ["1.0.0"]
    assert deleted(delete(kiln, f"/v2/{ORG}/zipfile"), "zipfile") == ["2.0.0"]
    assert deleted(delete(kiln, f"/v2/{ORG}/koji/1.0.0"), "koji") == ["1.0.0"]
    assert ops.release_names(ORG, "zipfile") == [] and ops.release_names(ORG, "koji") == []


def test_a_delete_path_answers_405_to_other_methods(kiln: Kiln) -> None:
    response = kiln.client.http.put(
        f"/omps/v1/{ORG}/{PACKAGE}/1.0.0", headers={"Authorization": kiln.token()}
    )
    assert_error(
        response, 405, "MethodNotAllowed", "The method is not allowed for the requested URL."
    )
