"""OMPS pushes from Koji (omps-behaviour.md §3, §9, §15.7), over HTTP through the chalice test
client, against a real Koji hub, file server and Greenwave on loopback (tests/omps/koji_hub.py):
the archive's two locations, every Koji error with its exact message, and the order of the
checks. Greenwave's decisions: test_koji_greenwave.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Kiln, free_port
from tests.omps.koji_hub import ARCHIVE, KojiWorld, koji_world, legacy
from tests.omps.operators import PACKAGE, flat_operator, nested_files, nested_operator

ORG = "kiln-koji"
NVR = "kiln-demo-operator-metadata-0.1.0-3"
FLAT_FILES = ["crd.yml", "csv.yaml", "packages.yaml"]


@pytest.fixture
def world(kiln: Kiln) -> Iterator[KojiWorld]:
    with koji_world() as found:
        kiln.configure(**found.settings())
        yield found


def koji_push(
    kiln: Kiln, path: str, authorization: str | None = "token"
) -> tuple[int, dict[str, Any]]:
    """``POST /omps<path>`` as a client pushes from Koji: no body; ``authorization``
    ``"token"`` sends a valid bearer token, None no header, anything else as it is."""
    headers = {}
    if authorization == "token":
        headers["Authorization"] = f"Bearer {kiln.token()}"
    elif authorization is not None:
        headers["Authorization"] = authorization
    answer = kiln.client.http.post(f"/omps{path}", headers=headers)
    assert answer.headers["Content-Type"] == "application/json"
    return answer.status_code, json.loads(answer.body)


def error(status: int, name: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"status": status, "error": name, "message": message, **extra}


# -- pushes -------------------------------------------------------------------------------------
def test_v1_push_without_version_takes_the_default_then_the_next(
    kiln: Kiln, world: KojiWorld
) -> None:
    url = world.release(NVR, flat_operator())
    status, body = koji_push(kiln, f"/v1/{ORG}/{PACKAGE}/koji/{NVR}")
    assert status == 200, body
    assert body == {
        "organization": ORG,
        "repo": PACKAGE,
        "version": "1.0.0",
        "extracted_files": FLAT_FILES,
        "nvr": NVR,
    }
    assert world.files.requests == [url.removeprefix(world.files.url)]
    status, body = koji_push(kiln, f"/v1/{ORG}/{PACKAGE}/koji/{NVR}")
    assert (status, body["version"]) == (200, "2.0.0")


def test_v1_push_with_version(kiln: Kiln, world: KojiWorld) -> None:
    world.release(NVR, flat_operator())
    status, body = koji_push(kiln, f"/v1/{ORG}/{PACKAGE}/koji/{NVR}/4.1.0")
    assert status == 200, body
    assert (body["repo"], body["version"], body["nvr"]) == (PACKAGE, "4.1.0", NVR)


def test_v2_push_takes_the_repo_from_the_package_name(kiln: Kiln, world: KojiWorld) -> None:
    world.release(NVR, nested_operator())
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")
    assert status == 200, body
    assert body == {
        "organization": ORG,
        "repo": PACKAGE,
        "version": "1.0.0",
        "extracted_files": sorted(nested_files()),
        "nvr": NVR,
    }


def test_v2_push_with_version(kiln: Kiln, world: KojiWorld) -> None:
    world.release(NVR, flat_operator())
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}/0.0.1")
    assert status == 200, body
    assert (body["repo"], body["version"], body["nvr"]) == (PACKAGE, "0.0.1", NVR)


def test_the_archive_of_a_build_on_another_volume(kiln: Kiln, world: KojiWorld) -> None:
    url = world.release(NVR, flat_operator(), volume="archive")
    assert "/vol/archive/packages/" in url
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")
    assert status == 200, body


def test_the_legacy_archive_is_found_among_the_build_logs(kiln: Kiln, world: KojiWorld) -> None:
    build = world.hub.add_build(NVR, legacy(ARCHIVE), logs=("build.log", ARCHIVE))
    path = f"{world.hub.build_dir(build)}/data/logs/noarch/{ARCHIVE}"
    world.files.put(path, flat_operator())
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")
    assert status == 200, body
    assert world.files.requests == [f"/{path}"]
    assert ("getBuildLogs", (build["build_id"],)) in world.hub.calls


# -- the order of the checks (§3) -----------------------------------------------------------
def test_without_authorization_koji_is_never_asked(kiln: Kiln, world: KojiWorld) -> None:
    world.release(NVR, flat_operator())
    status, body = koji_push(kiln, f"/v1/{ORG}/{PACKAGE}/koji/{NVR}", authorization=None)
    assert (status, body) == (
        403,
        error(403, "OMPSAuthorizationHeaderRequired", "Request contains no 'Authorization' header"),
    )
    assert world.hub.calls == [] and world.files.requests == []


def test_an_invalid_version_is_flagged_after_the_koji_checks(kiln: Kiln, world: KojiWorld) -> None:
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}/1.x")
    assert (status, body["error"]) == (404, "KojiNVRBuildNotFound")
    world.release(NVR, flat_operator())
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}/1.x")
    assert (status, body["error"]) == (400, "OMPSInvalidVersionFormat")


def test_an_archive_that_is_not_a_zip_is_refused_as_an_upload_would_be(
    kiln: Kiln, world: KojiWorld
) -> None:
    world.release(NVR, b"this is not a zip")
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")
    assert (status, body) == (400, error(400, "OMPSUploadedFileError", "File is not a zip file"))


def test_a_body_over_the_cap_is_413_after_the_authorization_check(
    kiln: Kiln, world: KojiWorld
) -> None:
    world.release(NVR, flat_operator())
    kiln.configure(omps_max_content_length=10)
    path = f"/omps/v2/{ORG}/koji/{NVR}"
    answer = kiln.client.http.post(path, headers={}, body=b"x" * 11)
    assert (answer.status_code, json.loads(answer.body)["error"]) == (
        403,
        "OMPSAuthorizationHeaderRequired",
    )
    headers = {"Authorization": f"Bearer {kiln.token()}"}
    answer = kiln.client.http.post(path, headers=headers, body=b"x" * 11)
    assert (answer.status_code, json.loads(answer.body)) == (
        413,
        error(
            413,
            "RequestEntityTooLarge",
            "The data value transmitted exceeds the capacity limit.",
        ),
    )
    assert world.hub.calls == []


@pytest.mark.parametrize("path", [f"/v1/{ORG}/{PACKAGE}/koji/{NVR}", f"/v2/{ORG}/koji/{NVR}/1.0.0"])
def test_other_methods_on_a_koji_path_are_405(kiln: Kiln, path: str) -> None:
    answer = kiln.client.http.get(f"/omps{path}", headers={"Authorization": "x"})
    assert (answer.status_code, json.loads(answer.body)) == (
        405,
        error(405, "MethodNotAllowed", "The method is not allowed for the requested URL."),
    )


# -- Koji's errors (§9, §15.7) --------------------------------------------------------------
def test_an_unknown_nvr_is_404(kiln: Kiln, world: KojiWorld) -> None:
    status, body = koji_push(kiln, f"/v1/{ORG}/{PACKAGE}/koji/missing-1.0-1")
    assert (status, body) == (
        404,
        error(404, "KojiNVRBuildNotFound", "NVR not found: missing-1.0-1"),
    )


def test_a_build_that_is_not_an_operator_image_is_400(kiln: Kiln, world: KojiWorld) -> None:
    world.hub.add_build(NVR, {"image": {"autorebuild": False}})
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")
    assert (status, body) == (
        400,
        error(400, "KojiNotAnOperatorImage", f"Not an operator image: {NVR}"),
    )


@pytest.mark.parametrize("extra", [None, {}, {"typeinfo": {"operator-manifests": {}}}])
def test_a_build_without_an_archive_key_is_not_an_operator_image(
    kiln: Kiln, world: KojiWorld, extra: Any
) -> None:
    build = world.hub.add_build(NVR)
    build["extra"] = extra
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")
    assert (status, body["error"]) == (400, "KojiNotAnOperatorImage")


def test_a_legacy_archive_missing_from_the_logs_is_500(kiln: Kiln, world: KojiWorld) -> None:
    world.hub.add_build(NVR, legacy("manifests.zip"), logs=("build.log",))
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")
    assert (status, body) == (
        500,
        error(
            500,
            "KojiManifestsArchiveNotFound",
            f"Expected archive 'manifests.zip' with manifests not found in build: {NVR}",
        ),
    )


def test_a_download_error_is_koji_error_with_the_http_client_text(
    kiln: Kiln, world: KojiWorld
) -> None:
    url = world.release(NVR, flat_operator())
    world.files.files.clear()  # the file server lost it: 404
    assert "//packages" not in url.removeprefix("http://")  # one "/" after the root URL
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")
    assert (status, body) == (
        500,
        error(500, "KojiError", f"404 Client Error: Not Found for url: {url}"),
    )


@pytest.mark.parametrize("declare_length", [True, False])
def test_an_archive_over_the_size_cap_is_koji_error(
    kiln: Kiln, world: KojiWorld, declare_length: bool
) -> None:
    archive = flat_operator()
    url = world.release(NVR, archive)
    world.files.declare_length = declare_length
    kiln.configure(omps_koji_max_bytes=len(archive) - 1)
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")
    size = f"{len(archive)}B>" if declare_length else ">"
    assert (status, body) == (
        500,
        error(500, "KojiError", f"Archive {url} is larger than limit ({size}{len(archive) - 1}B)"),
    )
    kiln.configure(omps_koji_max_bytes=len(archive))  # exactly the cap is fine
    assert koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")[0] == 200


def test_an_unreachable_hub_is_koji_error(kiln: Kiln) -> None:
    port = free_port()  # nothing listens there
    kiln.configure(omps_koji_hub_url=f"http://127.0.0.1:{port}/kojihub")
    kiln.configure(omps_koji_root_url=f"http://127.0.0.1:{port}/")
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")
    assert (status, body["error"]) == (500, "KojiError")
    assert f"port={port}" in body["message"] and "Connection refused" in body["message"]


@pytest.mark.parametrize("slow", ["hub", "files"])
def test_a_slow_hub_or_file_server_times_out_as_koji_error(
    kiln: Kiln, world: KojiWorld, slow: str
) -> None:
    world.release(NVR, flat_operator())
    getattr(world, slow).delay = 2.0
    kiln.configure(omps_request_timeout_seconds=1)
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")
    assert (status, body["error"]) == (500, "KojiError")
    assert "Read timed out. (read timeout=1)" in body["message"]


def test_a_hub_fault_is_koji_error(kiln: Kiln, world: KojiWorld) -> None:
    world.hub.faults["getBuild"] = f"invalid format: {NVR}"
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")
    assert (status, body) == (500, error(500, "KojiError", f"invalid format: {NVR}"))


def test_a_hub_that_is_not_a_hub_is_koji_error(kiln: Kiln, world: KojiWorld) -> None:
    kiln.configure(omps_koji_hub_url=world.files.url + "/kojihub")  # answers 404 to POST
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")
    assert (status, body["error"]) == (500, "KojiError")
    assert body["message"].startswith("404 Client Error: Not Found for url: ")


@pytest.mark.parametrize(
    "settings",
    [
        {"omps_koji_hub_url": "", "omps_koji_root_url": ""},
        {"omps_koji_hub_url": ""},
        {"omps_koji_root_url": ""},
    ],
)
def test_without_koji_configured_a_koji_push_says_so(
    kiln: Kiln, world: KojiWorld, settings: dict[str, str]
) -> None:
    world.release(NVR, flat_operator())
    kiln.configure(**settings)
    names = [f"KILN_{name.upper()}" for name, value in settings.items() if not value]
    status, body = koji_push(kiln, f"/v1/{ORG}/{PACKAGE}/koji/{NVR}")
    assert (status, body) == (
        500,
        error(500, "KojiError", f"Koji is not configured on this service ({', '.join(names)})"),
    )
    assert world.hub.calls == []
