"""OMPS zipfile pushes that succeed (omps-behaviour.md §3, §6, §7): v1 and v2, flat and nested
bundles, explicit and computed versions, what is stored (the bundle as operator-courier's push
builds it, the uploaded zip, the push record), and duplicates."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from typing import Any

import pytest
import yaml

from chalicelib.adapters.appregistry_models import AppReleaseModel, OmpsPushModel
from chalicelib.container import container
from chalicelib.domain.appregistry.callers import Caller
from chalicelib.domain.omps import push as push_use_case
from tests.conftest import Kiln
from tests.omps import operators as ops
from tests.omps.operators import PACKAGE, assert_error, post_zip

ORG = "acme"
FLAT_FILES = ["crd.yml", "csv.yaml", "packages.yaml"]
BUNDLE_DIR = re.compile(rf"^{PACKAGE}-[a-z0-9_]{{8}}$")


def pushed(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.body
    body: dict[str, Any] = response.json_body
    return body


def test_a_v2_push_takes_the_package_name_as_repo_and_starts_at_1_0_0(kiln: Kiln) -> None:
    body = pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator()))
    assert body == {
        "organization": ORG,
        "repo": PACKAGE,
        "version": "1.0.0",
        "extracted_files": FLAT_FILES,
    }
    assert pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator()))["version"] == "2.0.0"
    assert ops.release_names(ORG, PACKAGE) == ["1.0.0", "2.0.0"]


def test_a_v1_push_uses_the_url_repo_and_an_explicit_version(kiln: Kiln) -> None:
    path = f"/v1/{ORG}/{PACKAGE}/zipfile/0.5.0"
    body = pushed(post_zip(kiln, path, ops.nested_operator()))
    assert body == {
        "organization": ORG,
        "repo": PACKAGE,
        "version": "0.5.0",
        "extracted_files": sorted(ops.nested_files()),
    }
    assert pushed(post_zip(kiln, f"/v1/{ORG}/{PACKAGE}/zipfile", ops.flat_operator())) == {
        **body,
        "version": "1.0.0",
        "extracted_files": FLAT_FILES,
    }


def test_the_token_may_be_bare_or_a_bearer_token(kiln: Kiln) -> None:
    bearer = f"Bearer {kiln.token()}"
    assert pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator(), authorization=bearer))
    assert pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator()))["version"] == "2.0.0"


def test_a_flat_bundle_is_stored_as_operator_courier_pushes_it(kiln: Kiln) -> None:
    pushed(post_zip(kiln, f"/v2/{ORG}/zipfile/1.2.3", ops.flat_operator()))
    files = ops.stored_bundle(ORG, PACKAGE, "1.2.3")
    (folder,) = [name for name in files if "/" not in name]
    assert BUNDLE_DIR.match(folder), folder
    assert sorted(files) == [folder, f"{folder}/bundle.yaml"]
    data = yaml.safe_load(files[f"{folder}/bundle.yaml"])["data"]
    assert sorted(data) == ["clusterServiceVersions", "customResourceDefinitions", "packages"]
    (package,) = yaml.safe_load(data["packages"])
    assert package["packageName"] == PACKAGE
    (csv,) = yaml.safe_load(data["clusterServiceVersions"])
    assert csv["metadata"]["name"] == f"{PACKAGE}.v0.1.0"
    (crd,) = yaml.safe_load(data["customResourceDefinitions"])
    assert crd["spec"]["names"]["plural"] == "demos"


def test_a_nested_bundle_is_stored_as_a_copy_of_the_tree(kiln: Kiln) -> None:
    files = ops.nested_files()
    files.update({"README.md": "docs", "0.2.0/art.yaml": "skip: me", "image-references": "x"})
    body = pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.zip_of(files)))
    # every regular file counts as extracted, non-YAML and nested ones too
    assert body["extracted_files"] == sorted(files)
    stored = ops.stored_bundle(ORG, PACKAGE, "1.0.0")
    (folder,) = [name for name in stored if "/" not in name]
    assert BUNDLE_DIR.match(folder), folder
    inside = {name[len(folder) + 1 :]: data for name, data in stored.items() if name != folder}
    blacklisted = {"0.2.0/art.yaml", "image-references"}
    expected = {name for name in files if name not in blacklisted} | {"0.1.0", "0.2.0"}
    assert set(inside) == expected
    package_file = f"{PACKAGE}.package.yaml"
    assert inside[package_file].decode() == ops.nested_files()[package_file]


def test_without_a_version_the_highest_valid_release_gets_its_major_bumped(kiln: Kiln) -> None:
    path = f"/v2/{ORG}/zipfile"
    pushed(post_zip(kiln, f"{path}/2.5.1", ops.flat_operator()))
    assert pushed(post_zip(kiln, path, ops.flat_operator()))["version"] == "3.0.0"
    # a lower explicit version is accepted, and does not lower the next one
    assert pushed(post_zip(kiln, f"{path}/1.2.3", ops.flat_operator()))["version"] == "1.2.3"
    pushed(post_zip(kiln, f"{path}/4.0.1", ops.flat_operator()))
    assert pushed(post_zip(kiln, path, ops.flat_operator()))["version"] == "5.0.0"


def test_releases_that_are_not_x_y_z_do_not_count(kiln: Kiln) -> None:
    caller = Caller(kiln_principal(kiln))
    registry = container().app_registry
    registry.publish(caller, ORG, PACKAGE, b"blob", release="9.0.0-rc1")
    assert pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator()))["version"] == "1.0.0"
    assert pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator()))["version"] == "2.0.0"


def test_deleting_the_highest_release_lowers_the_next_version(kiln: Kiln) -> None:
    for expected in ("1.0.0", "2.0.0", "3.0.0"):
        assert pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator()))["version"] == (
            expected
        )
    deleted = kiln.client.http.delete(
        f"/omps/v2/{ORG}/{PACKAGE}/3.0.0", headers={"Authorization": kiln.token()}
    )
    assert deleted.status_code == 200, deleted.body
    assert pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator()))["version"] == "3.0.0"


def test_a_duplicate_release_is_a_courier_error_quoting_the_registry(kiln: Kiln) -> None:
    pushed(post_zip(kiln, f"/v2/{ORG}/zipfile/2.0.0", ops.flat_operator()))
    name = f"{ORG}/{PACKAGE}"
    message = f"{name} - 2.0.0 - helm exists already "
    assert_error(
        post_zip(kiln, f"/v1/{ORG}/{PACKAGE}/zipfile/2.0.0", ops.nested_operator()),
        500,
        "QuayCourierError",
        f"Failed to push manifest: {message}",
        quay_response={
            "error": {
                "code": "package-exists",
                "message": message,
                "details": {"package": name, "release": "2.0.0", "media_type": "helm"},
            }
        },
    )
    assert ops.release_names(ORG, PACKAGE) == ["2.0.0"]


def test_each_push_keeps_its_zip_and_an_immutable_record(kiln: Kiln) -> None:
    archive = ops.flat_operator()
    pushed(post_zip(kiln, f"/v2/{ORG}/zipfile/1.0.0", archive))
    release = AppReleaseModel.get(f"{ORG}/{PACKAGE}", "1.0.0/helm")
    record = OmpsPushModel.get(release.push_id)
    assert (record.organization, record.repo, record.version) == (ORG, PACKAGE, "1.0.0")
    assert (record.tenant, record.nvr, record.blob_digest) == ("demo", None, release.digest)
    assert record.extracted_files == FLAT_FILES
    assert record.validation["errors"] == []
    assert "csv spec.icon not defined" in record.validation["warnings"]
    assert record.zip_key == f"omps/pushes/{release.push_id}.zip"
    assert container().artifacts.read(record.zip_key) == archive
    assert record.zip_sha256 == hashlib.sha256(archive).hexdigest()


def test_once_the_release_is_stored_a_failing_record_is_no_error(
    kiln: Kiln, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§15.9: a 5xx after the release is stored would make a retrying client push twice."""

    store = type(container().artifacts)
    put_bytes = store.put_bytes

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("storage is down")

    def no_zips(self: Any, key: str, data: bytes, content_type: str) -> None:
        if key.startswith("omps/pushes/"):
            broken()
        put_bytes(self, key, data, content_type)

    monkeypatch.setattr(OmpsPushModel, "save", broken)
    monkeypatch.setattr(store, "put_bytes", no_zips)
    assert pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator()))["version"] == "1.0.0"
    assert ops.release_names(ORG, PACKAGE) == ["1.0.0"]


def test_the_use_case_adds_the_nvr_of_a_koji_push(kiln: Kiln) -> None:
    box = container()
    request = push_use_case.PushRequest(
        kiln.token(), ORG, None, None, ops.flat_operator(), nvr="demo-operator-1.0-1"
    )
    body = push_use_case.push(request, box.app_registry, box.settings)
    assert body["nvr"] == "demo-operator-1.0-1" and body["version"] == "1.0.0"
    release = AppReleaseModel.get(f"{ORG}/{PACKAGE}", "1.0.0/helm")
    assert OmpsPushModel.get(release.push_id).nvr == "demo-operator-1.0-1"


def test_an_upper_case_zip_extension_and_nested_directories_are_taken(kiln: Kiln) -> None:
    files = {**ops.flat_files(), "extra/notes/a.txt": "a"}
    response = post_zip(kiln, f"/v2/{ORG}/zipfile", ops.zip_of(files), filename="OPS.ZIP")
    assert pushed(response)["extracted_files"] == sorted(files)


def test_a_stored_entry_and_a_directory_entry_extract_too(kiln: Kiln) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("docs/", b"")
        for name, content in ops.flat_files().items():
            archive.writestr(name, content)
    body = pushed(post_zip(kiln, f"/v2/{ORG}/zipfile", buffer.getvalue()))
    assert body["extracted_files"] == FLAT_FILES


def kiln_principal(kiln: Kiln) -> Any:
    from chalicelib.domain.appregistry.callers import caller_from

    return caller_from(kiln.token(), container().settings).principal


def test_the_answer_is_json(kiln: Kiln) -> None:
    response = post_zip(kiln, f"/v2/{ORG}/zipfile", ops.flat_operator())
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.body)["repo"] == PACKAGE
