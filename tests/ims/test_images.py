from __future__ import annotations

import json

import pytest

from tests.conftest import Kiln
from tests.ims.helpers import V3, put_object


@pytest.mark.parametrize("prefix", ["/apis/ims/v3", "/apis/ims", "/apis/ims/v2"])
def test_register_image_with_link(kiln: Kiln, prefix: str) -> None:
    path = put_object(
        kiln, "uploads/demo/mine/manifest.json", json.dumps({"artifacts": []}).encode()
    )
    created = kiln.call(
        "POST",
        f"{prefix}/images",
        {"name": "mine", "arch": "aarch64", "link": {"path": path, "type": "s3"}},
    )
    assert created.status_code == 201
    image = created.json_body
    assert image["link"]["path"] == path and image["link"]["etag"]
    assert image["arch"] == "aarch64"
    assert kiln.call("GET", f"{prefix}/images").json_body == [image]
    assert kiln.call("GET", f"{prefix}/images/{image['id']}").json_body == image


def test_image_without_link(kiln: Kiln) -> None:
    created = kiln.call("POST", f"{V3}/images", {"name": "bare"})
    assert created.status_code == 201 and "link" not in created.json_body
    manifest = kiln.call("GET", f"{V3}/images/{created.json_body['id']}/manifest")
    assert manifest.status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({"arch": "x86_64"}, 422),
        ({"name": ""}, 422),
        ({"name": "x", "arch": "ppc"}, 422),
        ({"name": "x", "link": {"path": "s3://kiln-artifacts/none", "type": "s3"}}, 422),
        ({"name": "x", "link": {"path": "s3://kiln-artifacts/none"}}, 422),
        ({"name": "x", "metadata": ["a"]}, 422),
    ],
)
def test_invalid_image_is_rejected(kiln: Kiln, body: dict, status: int) -> None:
    response = kiln.call("POST", f"{V3}/images", body)
    assert response.status_code == status
    assert kiln.call("GET", f"{V3}/images").json_body == []


def test_manifest_view_adds_presigned_links(kiln: Kiln) -> None:
    rootfs = put_object(kiln, "uploads/demo/m/rootfs.squashfs", b"rootfs-bytes")
    manifest = {
        "artifacts": [
            {
                "link": {"path": rootfs, "type": "s3"},
                "type": "application/vnd.cray.image.rootfs.squashfs",
            }
        ]
    }
    path = put_object(kiln, "uploads/demo/m/manifest.json", json.dumps(manifest).encode())
    image = kiln.call("POST", f"{V3}/images", {"name": "m", "link": {"path": path, "type": "s3"}})
    view = kiln.call("GET", f"{V3}/images/{image.json_body['id']}/manifest").json_body
    assert "rootfs.squashfs" in view["artifacts"][0]["download_url"]
    assert view["download_url"]
    other = kiln.call("GET", f"{V3}/images/{image.json_body['id']}/manifest", tenant="other")
    assert other.status_code == 404


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ({"key": "packages", "value": "vim,emacs"}, {"packages": "vim,emacs"}),  # the cray CLI
        ({"a": "1", "b": "2"}, {"a": "1", "b": "2"}),  # the document's map
        ([{"key": "a", "value": "1"}, {"key": "b", "value": "2"}], {"a": "1", "b": "2"}),
    ],
)
def test_metadata_on_create_in_each_form_real_clients_send(
    kiln: Kiln, given: object, kept: dict
) -> None:
    created = kiln.call("POST", f"{V3}/images", {"name": "m", "metadata": given})
    assert created.status_code == 201, created.body
    assert created.json_body["metadata"] == kept
    assert kiln.call("GET", f"{V3}/images/{created.json_body['id']}").json_body["metadata"] == kept


@pytest.mark.parametrize("prefix", ["/apis/ims/v3", "/apis/ims", "/apis/ims/v2"])
def test_metadata_patch_in_each_form_real_clients_send(kiln: Kiln, prefix: str) -> None:
    image = kiln.call("POST", f"{prefix}/images", {"name": "m"}).json_body
    path = f"{prefix}/images/{image['id']}"
    one = {"operation": "set", "key": "a", "value": "1"}  # the cray CLI sends one object
    assert kiln.call("PATCH", path, {"metadata": one}).json_body["metadata"] == {"a": "1"}
    listed = [{"operation": "set", "key": "b", "value": "2"}, {"operation": "remove", "key": "a"}]
    assert kiln.call("PATCH", path, {"metadata": listed}).json_body["metadata"] == {"b": "2"}
    wrapped = {"annotations": [{"operation": "set", "key": "c", "value": "3"}]}
    patched = kiln.call("PATCH", path, {"metadata": wrapped}).json_body
    assert patched["metadata"] == {"b": "2", "c": "3"}
    remove = {"operation": "remove", "key": "b"}
    assert kiln.call("PATCH", path, {"metadata": remove}).json_body["metadata"] == {"c": "3"}


@pytest.mark.parametrize(
    "metadata",
    [
        {"operation": "rename", "key": "a"},
        {"operation": "set", "key": "", "value": "x"},
        {"operation": "set", "key": "a", "value": 3},
        {"operation": "set", "key": "a", "value": "x" * 1025},
        {"operation": "set", "key": "k" * 256, "value": "x"},
        [{"operation": "set", "key": f"k{i}", "value": "v"} for i in range(129)],
        "set a",
    ],
)
def test_bad_metadata_patch_is_422_and_changes_nothing(kiln: Kiln, metadata: object) -> None:
    image = kiln.call("POST", f"{V3}/images", {"name": "m", "metadata": {"a": "1"}}).json_body
    response = kiln.call("PATCH", f"{V3}/images/{image['id']}", {"metadata": metadata})
    assert response.status_code == 422, response.body
    assert "metadata" in response.json_body["errors"]
    assert kiln.call("GET", f"{V3}/images/{image['id']}").json_body == image


def test_metadata_beyond_its_entry_limit_is_422(kiln: Kiln) -> None:
    full = {f"k{i}": "v" for i in range(128)}
    image = kiln.call("POST", f"{V3}/images", {"name": "m", "metadata": full}).json_body
    one_more = {"operation": "set", "key": "extra", "value": "v"}
    response = kiln.call("PATCH", f"{V3}/images/{image['id']}", {"metadata": one_more})
    assert response.status_code == 422
    assert kiln.call("GET", f"{V3}/images/{image['id']}").json_body["metadata"] == full
