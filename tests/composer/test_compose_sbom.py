"""Kiln's ``sbom`` extension of the composer face: once an image's build published SBOMs, its
manifest (GET /composes/{id}/manifests) and its entry in the metadata's ``images`` (GET
/composes/{id}/metadata) carry presigned URLs of both documents; an image without SBOMs, or not
built yet, has none. The compose's image in Glance names and serves them too."""

from __future__ import annotations

import json
from typing import Any

import requests

from chalicelib.host_protocol import MediaType
from tests.composer.helpers import API, compose_body, execution_input, image, job_ids, post, s3
from tests.conftest import Kiln
from tests.glance.conftest import Glance

CYCLONEDX = {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}
SPDX = {"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "packages": []}
PLAN = {"format": "kiln-build-plan/1", "packages": []}


def _put(kiln: Kiln, key: str, data: bytes) -> None:
    s3().put_object(Bucket=kiln.provisioned.bucket, Key=key, Body=data)


def _succeed(kiln: Kiln, job_id: str, with_sbom: bool) -> None:
    prefix = f"images/{execution_input(kiln, job_id)['image_id']}/"
    files = [
        ("disk.qcow2", b"QFI\xfb", MediaType.DISK_QCOW2),
        ("build-plan.json", json.dumps(PLAN).encode(), MediaType.BUILD_PLAN_JSON),
    ]
    if with_sbom:
        files += [
            ("sbom.cdx.json", json.dumps(CYCLONEDX).encode(), MediaType.SBOM_CYCLONEDX),
            ("sbom.spdx.json", json.dumps(SPDX).encode(), MediaType.SBOM_SPDX),
        ]
    for name, data, _ in files:
        _put(kiln, f"{prefix}{name}", data)
    output = {
        "manifest": {"etag": "e"},
        "artifacts": [{"key": f"{prefix}{name}", "type": kind} for name, _, kind in files],
    }
    kiln.build_events({"type": "result", "outcome": "success", "job_id": job_id, "output": output})


def _get(kiln: Kiln, compose_id: str, what: str) -> dict[str, Any]:
    response = kiln.call("GET", f"{API}/composes/{compose_id}/{what}")
    assert response.status_code == 200, response.body
    return dict(response.json_body)


def _download(url: str) -> Any:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_manifests_and_metadata_carry_the_sbom_urls_of_built_images(hosts: Kiln) -> None:
    hosts.register_host("x86_64", xname="x86-host-2")  # both images build at once
    compose_id = post(hosts, compose_body(image(), image(image_type="vsphere"))).json_body["id"]
    with_sbom, without = job_ids(hosts, compose_id)

    # nothing built yet: no sbom anywhere, no images in the metadata
    manifests = _get(hosts, compose_id, "manifests")["manifests"]
    assert all("sbom" not in manifest for manifest in manifests)
    assert "images" not in _get(hosts, compose_id, "metadata")

    _succeed(hosts, without, with_sbom=False)
    assert "images" not in _get(hosts, compose_id, "metadata")  # no image has SBOMs yet
    _succeed(hosts, with_sbom, with_sbom=True)

    first, second = _get(hosts, compose_id, "manifests")["manifests"]
    assert first["format"] == "kiln-build-plan/1" and set(first["sbom"]) == {"cyclonedx", "spdx"}
    assert _download(first["sbom"]["cyclonedx"]) == CYCLONEDX
    assert _download(first["sbom"]["spdx"]) == SPDX
    assert second == PLAN  # built without SBOMs: the plan as it is

    images = _get(hosts, compose_id, "metadata")["images"]
    assert [(i["image_index"], i["image_type"]) for i in images] == [
        (0, "guest-image"),
        (1, "vsphere"),
    ]
    assert set(images[0]["sbom"]) == {"cyclonedx", "spdx"} and "sbom" not in images[1]
    assert _download(images[0]["sbom"]["spdx"]) == SPDX

    other = hosts.call("GET", f"{API}/composes/{compose_id}/manifests", tenant="other")
    assert other.status_code == 404  # another tenant learns nothing, URLs least of all


def test_the_compose_image_in_glance_serves_its_sbom(hosts: Kiln) -> None:
    compose_id = post(hosts, compose_body(image())).json_body["id"]
    (job_id,) = job_ids(hosts, compose_id)
    _succeed(hosts, job_id, with_sbom=True)
    glance = Glance(hosts)
    (listed,) = glance.call("GET", "/v2/images", tenant="demo").json_body["images"]
    assert listed["kiln_sbom"] == f"/v2/images/{listed['id']}/sbom"
    response = glance.call("GET", listed["kiln_sbom"] + "?format=spdx-2.3", tenant="demo")
    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"] == "application/spdx+json"
    assert json.loads(response.body) == SPDX
