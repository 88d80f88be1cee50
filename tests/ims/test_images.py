from __future__ import annotations

import json

import pytest

from tests.conftest import Kiln
from tests.ims.helpers import V3, put_object


@pytest.mark.parametrize("prefix", ["/apis/ims/v3", "/apis/ims", "/apis/ims/v2"])
def test_register_image_with_link(kiln: Kiln, prefix: str) -> None:
    path = put_object(kiln, "images/mine/manifest.json", json.dumps({"artifacts": []}).encode())
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
    rootfs = put_object(kiln, "images/m/rootfs.squashfs", b"rootfs-bytes")
    manifest = {
        "artifacts": [
            {
                "link": {"path": rootfs, "type": "s3"},
                "type": "application/vnd.cray.image.rootfs.squashfs",
            }
        ]
    }
    path = put_object(kiln, "images/m/manifest.json", json.dumps(manifest).encode())
    image = kiln.call("POST", f"{V3}/images", {"name": "m", "link": {"path": path, "type": "s3"}})
    view = kiln.call("GET", f"{V3}/images/{image.json_body['id']}/manifest").json_body
    assert "rootfs.squashfs" in view["artifacts"][0]["download_url"]
    assert view["download_url"]
    other = kiln.call("GET", f"{V3}/images/{image.json_body['id']}/manifest", tenant="other")
    assert other.status_code == 404
