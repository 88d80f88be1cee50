"""OMPS zipfile pushes that are refused (omps-behaviour.md §3 to §7, §15): the upload, the
archive (upstream's checks and Kiln's fixes), the package name, the version, the token, and
operator-courier's validation -- each with its exact body, in upstream's check order, and
nothing published."""

from __future__ import annotations

import random
import re
import zipfile
from typing import Any

import pytest

from chalicelib.domain.appregistry.errors import RegistryError
from chalicelib.domain.appregistry.releases import AppRegistry
from tests.conftest import Kiln
from tests.omps import operators as ops
from tests.omps.operators import PACKAGE, assert_error, post_zip

ORG = "acme"
V2 = f"/v2/{ORG}/zipfile"
LIMIT = 20 * 1024 * 1024
REGEXP = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$"


def refused(response: Any, error: str, message: str, status: int = 400, **extra: Any) -> None:
    assert_error(response, status, error, message, **extra)
    assert ops.release_names(ORG, PACKAGE) == []


def uploaded_file_error(response: Any, message: str) -> None:
    refused(response, "OMPSUploadedFileError", message)


# -- the request ----------------------------------------------------------------------------------
def test_the_authorization_header_is_checked_before_anything_about_the_file(kiln: Kiln) -> None:
    message = "Request contains no 'Authorization' header"
    for response in (
        post_zip(kiln, V2, ops.flat_operator(), authorization=None),
        post_zip(kiln, V2, b"not a zip", authorization=None, field="other"),
        post_zip(kiln, f"{V2}/1.x", b"\0" * (3 * 1024 * 1024), authorization=None),
        kiln.client.http.post(f"/omps{V2}", body=b""),
    ):
        refused(response, "OMPSAuthorizationHeaderRequired", message, 403)


def test_a_body_over_2_mib_is_413_whatever_it_holds(kiln: Kiln) -> None:
    big = ops.zip_of({**ops.flat_files(), "blob.bin": random.Random(0).randbytes(2 * 1024 * 1024)})
    assert len(big) > 2 * 1024 * 1024
    message = "The data value transmitted exceeds the capacity limit."
    refused(post_zip(kiln, V2, big), "RequestEntityTooLarge", message, 413)


def test_the_file_must_come_in_the_multipart_field_file(kiln: Kiln) -> None:
    no_field = 'No field "file" in uploaded data'
    refused(
        post_zip(kiln, V2, ops.flat_operator(), field="upload"), "OMPSExpectedFileError", no_field
    )
    not_multipart = kiln.client.http.post(
        f"/omps{V2}",
        headers={"Authorization": kiln.token(), "Content-Type": "application/zip"},
        body=ops.flat_operator(),
    )
    refused(not_multipart, "OMPSExpectedFileError", no_field)
    no_name = 'No selected "file" in uploaded data'
    refused(post_zip(kiln, V2, b"", filename=""), "OMPSExpectedFileError", no_name)


@pytest.mark.parametrize(
    ("filename", "extension"),
    [("operator.tar.gz", ".gz"), ("operator", ""), (".zip", ""), ("operator.zip.txt", ".txt")],
)
def test_the_uploaded_file_name_must_end_in_zip(kiln: Kiln, filename: str, extension: str) -> None:
    response = post_zip(kiln, V2, ops.flat_operator(), filename=filename)
    uploaded_file_error(
        response, f"Uploaded file extension \"{extension}\" is not any of {{'.zip'}}"
    )


# -- the archive ----------------------------------------------------------------------------------
def test_a_file_that_is_not_a_zip_is_refused_before_the_version_is_checked(kiln: Kiln) -> None:
    uploaded_file_error(post_zip(kiln, f"{V2}/1.x", b"PK but not really"), "File is not a zip file")
    uploaded_file_error(post_zip(kiln, V2, b""), "File is not a zip file")


def test_the_declared_uncompressed_size_is_limited(kiln: Kiln) -> None:
    package = ops.package_yaml()
    archive = ops.zip_of({"packages.yaml": package, "big.bin": b"\0" * (20974281 - len(package))})
    message = "Uncompressed archive is larger than limit (20974281B>20971520B)"
    uploaded_file_error(post_zip(kiln, V2, archive), message)
    kiln.configure(omps_max_uncompressed_bytes=1000)
    declared = sum(len(str(text).encode()) for text in ops.flat_files().values())
    message = f"Uncompressed archive is larger than limit ({declared}B>1000B)"
    uploaded_file_error(post_zip(kiln, V2, ops.flat_operator()), message)


def test_a_bomb_whose_headers_lie_is_stopped_at_the_real_limit(kiln: Kiln) -> None:
    """§15.2: the bytes really extracted count, not what the headers declare."""
    kiln.configure(omps_max_uncompressed_bytes=1024 * 1024)
    honest = ops.zip_of({**ops.flat_files(), "bomb.yaml": b"\n" * (8 * 1024 * 1024)})
    bomb = ops.patch_entry(honest, "bomb.yaml", file_size=10)
    response = post_zip(kiln, V2, bomb)
    assert response.status_code == 400, response.body
    message = response.json_body["message"]
    found = re.fullmatch(r"Uncompressed archive is larger than limit \((\d+)B>1048576B\)", message)
    assert found and 1048576 < int(found[1]) <= 1048576 + 256 * 1024, message
    assert ops.release_names(ORG, PACKAGE) == []


def test_an_entry_that_unpacks_to_more_than_it_declares_fails_the_crc_check(kiln: Kiln) -> None:
    honest = ops.zip_of({**ops.flat_files(), "notes.yaml": "a: 1\n" * 100})
    lying = ops.patch_entry(honest, "notes.yaml", file_size=10)
    uploaded_file_error(
        post_zip(kiln, V2, lying), "CRC check failed for file notes.yaml in archive"
    )


def test_an_encrypted_entry_is_refused(kiln: Kiln) -> None:
    archive = ops.patch_entry(ops.flat_operator(), "packages.yaml", flag_bits=0x1)
    message = "File 'packages.yaml' is encrypted, password required for extraction"
    uploaded_file_error(post_zip(kiln, V2, archive), message)


def test_a_crc_mismatch_is_refused(kiln: Kiln) -> None:
    archive = ops.patch_entry(ops.flat_operator(), "packages.yaml", crc=12345)
    message = "CRC check failed for file packages.yaml in archive"
    uploaded_file_error(post_zip(kiln, V2, archive), message)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("../evil.yaml", "Entry '../evil.yaml' has a '..' path component, which is not allowed"),
        ("a/../../x.yml", "Entry 'a/../../x.yml' has a '..' path component, which is not allowed"),
        ("/abs/x.yaml", "Entry '/abs/x.yaml' has an absolute path, which is not allowed"),
    ],
)
def test_entries_outside_the_archive_are_refused(kiln: Kiln, entry: str, message: str) -> None:
    """§15.3: upstream rewrites these and accepts the push; Kiln refuses it."""
    entries = [(zipfile.ZipInfo(name), text) for name, text in ops.flat_files().items()]
    archive = ops.zip_with_entries([*entries, (zipfile.ZipInfo(entry), "evil: true\n")])
    uploaded_file_error(post_zip(kiln, V2, archive), message)


def test_a_symbolic_link_is_refused(kiln: Kiln) -> None:
    entries = [(zipfile.ZipInfo(name), text) for name, text in ops.flat_files().items()]
    archive = ops.zip_with_entries([*entries, (ops.symlink_entry("link.yaml"), "/etc/passwd")])
    message = "Entry 'link.yaml' is a symbolic link, which is not allowed"
    uploaded_file_error(post_zip(kiln, V2, archive), message)


def test_the_number_of_entries_is_limited(kiln: Kiln) -> None:
    kiln.configure(omps_max_entries=3)
    archive = ops.zip_of({**ops.flat_files(), "README.md": "hello"})
    uploaded_file_error(post_zip(kiln, V2, archive), "Archive has more entries than limit (4>3)")
    assert post_zip(kiln, V2, ops.flat_operator()).status_code == 200


# -- the package name -----------------------------------------------------------------------------
def package_error(response: Any, message: str, **extra: Any) -> None:
    refused(response, "PackageValidationError", message, validation_info={}, **extra)


def test_an_empty_zip_has_no_package_name(kiln: Kiln) -> None:
    package_error(post_zip(kiln, V2, ops.zip_of({})), "Could not find packageName in manifests.")


def test_only_top_level_yaml_files_are_scanned(kiln: Kiln) -> None:
    wrapped = ops.zip_of({f"operator/{name}": text for name, text in ops.flat_files().items()})
    package_error(post_zip(kiln, V2, wrapped), "Could not find packageName in manifests.")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("0-empty.yaml", ""),
        ("0-broken.yml", "packageName: [unclosed\n"),
        ("0-duplicate.yaml", "packageName: a\npackageName: b\n"),
        ("0-scalar.yaml", "just a packageName mention\n"),
        ("0-binary.yaml", b"\xff\xfe\x00"),
    ],
)
def test_a_yaml_file_read_before_the_package_file_must_load(
    kiln: Kiln, name: str, content: str | bytes
) -> None:
    archive = ops.zip_of({name: content, **ops.flat_files()})
    package_error(post_zip(kiln, V2, archive), f"Failed to process yaml file /{name}")


def test_files_without_the_key_are_read_past(kiln: Kiln) -> None:
    archive = ops.zip_of({"0-list.yaml": "- a\n- b\n", "0-map.yml": "a: 1\n", **ops.flat_files()})
    assert post_zip(kiln, V2, archive).status_code == 200


# -- the version ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "version", ["1.0.0.1", "1.0.0-2", "1.0.02", "1.a.2", "1.1", "01.0.0", "v1.0.0", "-1.0.0"]
)
def test_an_explicit_version_must_be_int_dot_int_dot_int(kiln: Kiln, version: str) -> None:
    message = (
        f"Version '{version}' must be in format '<int>.<int>.<int>': must match regexp '{REGEXP}'"
    )
    refused(
        post_zip(kiln, f"{V2}/{version}", ops.flat_operator()), "OMPSInvalidVersionFormat", message
    )


def test_the_version_is_checked_after_the_package_and_before_the_token(kiln: Kiln) -> None:
    no_package = ops.zip_of({"csv.yaml": ops.csv_yaml()})
    package_error(
        post_zip(kiln, f"{V2}/1.x", no_package), "Could not find packageName in manifests."
    )
    response = post_zip(kiln, f"{V2}/1.x", ops.flat_operator(), authorization="not-a-token")
    message = f"Version '1.x' must be in format '<int>.<int>.<int>': must match regexp '{REGEXP}'"
    refused(response, "OMPSInvalidVersionFormat", message)


# -- the token ------------------------------------------------------------------------------------
def test_a_token_kiln_does_not_know_is_403_at_the_version_lookup(kiln: Kiln) -> None:
    """§15.8: upstream answers a bad token with a 500."""
    response = post_zip(kiln, V2, ops.flat_operator(), authorization="Bearer not-a-token")
    assert response.status_code == 403, response.body
    body = response.json_body
    assert body["error"] == "QuayAuthorizationError"
    prefix = f"Cannot retrieve information about package {ORG}/{PACKAGE}: Invalid credentials"
    assert body["message"].startswith(prefix), body
    assert body["quay_response"]["error"]["code"] == "unauthorized-access"
    assert ops.release_names(ORG, PACKAGE) == []


def test_with_an_explicit_version_a_bad_token_is_403_at_the_push(kiln: Kiln) -> None:
    response = post_zip(kiln, f"{V2}/1.0.0", ops.flat_operator(), authorization="not-a-token")
    assert response.status_code == 403, response.body
    body = response.json_body
    assert body["error"] == "QuayAuthorizationError"
    assert body["message"].startswith("Failed to push manifest: Invalid credentials"), body
    assert body["quay_response"]["error"]["code"] == "unauthorized-access"


def test_an_empty_authorization_passes_the_header_check_but_cannot_publish(kiln: Kiln) -> None:
    # post_zip's "" is the default token: send a really empty header
    body, content_type = ops.multipart(ops.flat_operator())
    response = kiln.client.http.post(
        f"/omps{V2}", headers=ops.upload_headers("", content_type), body=body
    )
    assert response.status_code == 403, response.body
    body = response.json_body
    registry_error = body["quay_response"]["error"]
    assert registry_error["code"] == "unauthorized-access"
    assert body == {
        "status": 403,
        "error": "QuayAuthorizationError",
        "message": f"Failed to push manifest: {registry_error['message']}",
        "quay_response": {"error": registry_error},
    }
    assert ops.release_names(ORG, PACKAGE) == []


# -- operator-courier -----------------------------------------------------------------------------
def test_a_package_without_a_csv_is_not_a_bundle(kiln: Kiln) -> None:
    archive = ops.zip_of({"packages.yaml": ops.package_yaml(), "crd.yaml": ops.crd_yaml()})
    message = (
        "Failed to push manifest: The source directory structure is not in valid flat or nested "
        "format,because no valid CSV file is found in root or manifest directories."
    )
    package_error(post_zip(kiln, V2, archive), message)


def test_an_invalid_bundle_reports_operator_courier_s_errors_and_warnings(kiln: Kiln) -> None:
    csv = ops.csv_yaml().replace("  installModes:", "  notInstallModes:")
    archive = ops.zip_of({**ops.flat_files(), "csv.yaml": csv})
    response = post_zip(kiln, V2, archive)
    assert response.status_code == 400, response.body
    body = response.json_body
    message = (
        "Failed to push manifest: Resulting bundle is invalid, input yaml is improperly defined."
    )
    assert (body["error"], body["message"]) == ("PackageValidationError", message)
    assert "csv spec.installModes not defined" in body["validation_info"]["errors"]
    assert "csv spec.icon not defined" in body["validation_info"]["warnings"]


def test_in_v1_the_url_repo_must_be_the_package_name(kiln: Kiln) -> None:
    response = post_zip(kiln, f"/v1/{ORG}/other/zipfile", ops.flat_operator())
    assert response.status_code == 400, response.body
    body = response.json_body
    assert body["error"] == "PackageValidationError"
    mismatch = (
        f"The packageName ({PACKAGE}) in bundle does not match repository name (other) provided "
        "as command line argument."
    )
    assert mismatch in body["validation_info"]["errors"]
    assert ops.release_names(ORG, "other") == []


def test_a_push_path_answers_405_to_other_methods(kiln: Kiln) -> None:
    response = kiln.client.http.get(f"/omps{V2}", headers={"Authorization": kiln.token()})
    assert_error(
        response, 405, "MethodNotAllowed", "The method is not allowed for the requested URL."
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/omps/v2"),
        ("GET", "/omps/v3/health/ping"),
        ("POST", f"/omps/v2/{ORG}"),
        ("POST", f"/omps/v1/{ORG}/{PACKAGE}/zipfile/1.0.0/extra"),
        ("PUT", "/omps/a/b/c/d/e/f/g/h"),
    ],
)
def test_a_path_omps_lacks_is_its_404(kiln: Kiln, method: str, path: str) -> None:
    response = getattr(kiln.client.http, method.lower())(
        path, headers={"Authorization": kiln.token()}
    )
    message = (
        "The requested URL was not found on the server. If you entered the URL manually please "
        "check your spelling and try again."
    )
    assert_error(response, 404, "NotFound", message)


# -- the registry ---------------------------------------------------------------------------------
def test_a_name_the_registry_refuses_is_a_courier_error(kiln: Kiln) -> None:
    name = f"{ORG}/KilnDemo"
    message = f"invalid repository name: {name}"
    response = post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator(package="KilnDemo"))
    assert response.status_code == 500, response.body
    body = response.json_body
    assert (body["error"], body["message"]) == (
        "QuayCourierError",
        f"Failed to push manifest: {message}",
    )
    registry_error = body["quay_response"]["error"]
    assert (registry_error["code"], registry_error["message"]) == ("invalid-usage", message)


def test_a_failing_version_lookup_is_a_package_error(
    kiln: Kiln, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*_args: Any) -> str:
        raise RegistryError("the registry is down")

    monkeypatch.setattr(AppRegistry, "next_release", failing)
    message = f"Cannot retrieve information about package {ORG}/{PACKAGE}: the registry is down"
    refused(post_zip(kiln, V2, ops.flat_operator()), "QuayPackageError", message, 500)
