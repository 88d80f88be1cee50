"""Kiln's GET /v2/images/{image_id}/sbom over HTTP: an IMS build whose host published SBOMs
(real documents from builders/sbom.py, in moto's S3) shows in Glance with ``kiln_sbom``; the
route serves either format to whoever sees the image, and answers Glance's 404 and 400
otherwise. The IMS manifest view lists the same files with download URLs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
import requests
from spdx_tools.spdx.jsonschema.document_converter import DocumentConverter

from builders import sbom as host_sbom
from chalicelib.host_protocol import MediaType
from tests.composer.helpers import execution_input
from tests.conftest import Kiln
from tests.glance.conftest import Glance
from tests.ims.helpers import V3, create_job, public_key, put_object, ready_recipe

PLAN = {
    "format": "kiln-build-plan/1",
    "codename": "bookworm",
    "architecture": "amd64",
    "source_date_epoch": 1700000000,
    "packages": [
        {"name": "openssh-server", "version": "1:9.2p1-2+deb12u5", "arch": "amd64", "sha256": ""},
        {"name": "bash", "version": "5.2.15-2+b7", "arch": "amd64", "sha256": "ab" * 32},
    ],
}


def documents() -> tuple[bytes, bytes]:
    described = host_sbom.describe(PLAN, [], [], "image")
    cyclonedx = json.dumps(host_sbom.cyclonedx(described)).encode()
    spdx = DocumentConverter().convert(host_sbom.spdx_document(described))
    return cyclonedx, json.dumps(spdx).encode()


def build(kiln: Kiln, tenant: str, with_sbom: bool = True) -> dict[str, Any]:
    """An IMS build that succeeded; its rootfs (and SBOMs) under the image's prefix."""
    kiln.register_host()
    recipe, key = ready_recipe(kiln, tenant), public_key(kiln, tenant)
    job = create_job(kiln, recipe["id"], key["id"], tenant).json_body
    image_id = execution_input(kiln, job["id"])["image_id"]  # where the host publishes
    prefix = f"images/{image_id}/"
    put_object(kiln, f"{prefix}image.squashfs", b"hsqs")
    artifacts = [{"key": f"{prefix}image.squashfs", "type": MediaType.ROOTFS_SQUASHFS}]
    if with_sbom:
        cyclonedx, spdx = documents()
        for name, data, kind in (
            ("sbom.cdx.json", cyclonedx, MediaType.SBOM_CYCLONEDX),
            ("sbom.spdx.json", spdx, MediaType.SBOM_SPDX),
        ):
            put_object(kiln, f"{prefix}{name}", data)
            artifacts.append({"key": f"{prefix}{name}", "type": kind})
    result = {
        "type": "result",
        "outcome": "success",
        "job_id": job["id"],
        "output": {"manifest": {"etag": "e"}, "artifacts": artifacts},
    }
    kiln.build_events(result)
    return {**job, "image_id": image_id, "artifacts": artifacts}


def glance_image(glance: Glance, job_id: str, tenant: str = "alpha") -> dict[str, Any]:
    listed = glance.call("GET", "/v2/images", tenant=tenant).json_body["images"]
    (image,) = [image for image in listed if image.get("kiln_job_id") == job_id]
    return dict(image)


def get_sbom(glance: Glance, image_id: str, query: str = "", tenant: str = "alpha") -> Any:
    return glance.call("GET", f"/v2/images/{image_id}/sbom{query}", tenant=tenant)


def assert_glance_error(response: Any, status: int) -> None:
    assert response.status_code == status, response.body
    body = json.loads(response.body)
    assert set(body) == {"message", "code", "title"} and body["code"].startswith(f"{status} ")


@pytest.fixture
def built(glance: Glance) -> dict[str, Any]:
    job = build(glance.kiln, "alpha")
    return {"job": job, "image": glance_image(glance, job["id"])}


def test_a_build_image_names_its_sbom_and_serves_both_formats(
    glance: Glance, built: dict[str, Any]
) -> None:
    image = built["image"]
    assert image["kiln_sbom"] == f"/v2/images/{image['id']}/sbom"
    cyclonedx, spdx = documents()
    for query in ("", "?format=cyclonedx-1.6"):
        response = get_sbom(glance, image["id"], query)
        assert response.status_code == 200, response.body
        assert response.headers["Content-Type"] == "application/vnd.cyclonedx+json"
        document = json.loads(response.body)
        assert document == json.loads(cyclonedx) and document["specVersion"] == "1.6"
    response = glance.call("GET", image["kiln_sbom"] + "?format=spdx-2.3")
    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"] == "application/spdx+json"
    assert json.loads(response.body) == json.loads(spdx)
    assert glance.run_imports() == 1  # still served once the image is active
    assert get_sbom(glance, image["id"]).status_code == 200


def test_an_unknown_format_is_400(glance: Glance, built: dict[str, Any]) -> None:
    for query in ("?format=xml", "?format=", "?format=CycloneDX-1.6", "?format=spdx-2.2"):
        assert_glance_error(get_sbom(glance, built["image"]["id"], query), 400)


def test_only_those_who_see_the_image_get_its_sbom(glance: Glance, built: dict[str, Any]) -> None:
    image_id = built["image"]["id"]
    assert_glance_error(get_sbom(glance, image_id, tenant="beta"), 404)
    assert_glance_error(get_sbom(glance, image_id, "?format=xml", tenant="beta"), 400)
    shared = glance.patch(image_id, [{"op": "replace", "path": "/visibility", "value": "shared"}])
    assert shared.status_code == 200, shared.body
    member = glance.call("POST", f"/v2/images/{image_id}/members", {"member": "beta"})
    assert member.status_code == 200, member.body
    assert get_sbom(glance, image_id, tenant="beta").status_code == 200
    assert get_sbom(glance, image_id, tenant="gamma", query="?format=spdx-2.3").status_code == 404
    admin = glance.call("GET", f"/v2/images/{image_id}/sbom", tenant="gamma", role="admin")
    assert admin.status_code == 200


def test_no_sbom_is_404(glance: Glance) -> None:
    job = build(glance.kiln, "alpha", with_sbom=False)
    image = glance_image(glance, job["id"])
    assert "kiln_sbom" not in image
    assert_glance_error(get_sbom(glance, image["id"]), 404)
    assert_glance_error(get_sbom(glance, image["id"], "?format=spdx-2.3"), 404)
    for image_id in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        assert_glance_error(get_sbom(glance, image_id), 404)
    # an image of the caller's own naming a build's job is not that build's image
    own = glance.create(kiln_job_id=job["id"])
    assert_glance_error(get_sbom(glance, own["id"]), 404)


def test_a_forged_job_property_does_not_reach_another_tenants_sbom(
    glance: Glance, built: dict[str, Any]
) -> None:
    forged = glance.create(tenant="beta", kiln_job_id=built["job"]["id"])
    assert_glance_error(get_sbom(glance, forged["id"], tenant="beta"), 404)
    patched = glance.patch(
        built["image"]["id"],
        [{"op": "replace", "path": "/kiln_sbom", "value": "/elsewhere"}],
    )
    assert patched.status_code == 200  # the property is informative: the route reads the job
    assert get_sbom(glance, built["image"]["id"]).status_code == 200


def test_an_sbom_missing_from_the_store_is_404(glance: Glance, built: dict[str, Any]) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    key = next(a["key"] for a in built["job"]["artifacts"] if a["type"] == MediaType.SBOM_SPDX)
    s3.delete_object(Bucket=glance.kiln.provisioned.bucket, Key=key)
    assert_glance_error(get_sbom(glance, built["image"]["id"], "?format=spdx-2.3"), 404)
    assert get_sbom(glance, built["image"]["id"]).status_code == 200


def test_the_ims_manifest_lists_the_sboms_with_download_urls(glance: Glance) -> None:
    kiln = glance.kiln
    job = build(kiln, "alpha")
    image_id = job["image_id"]
    listed = [
        {
            "name": item["key"].rsplit("/", 1)[1],
            "type": item["type"],
            "link": {"path": f"s3://{kiln.provisioned.bucket}/{item['key']}", "type": "s3"},
        }
        for item in job["artifacts"]
    ]
    manifest = {"version": "1.0", "created": datetime.now(UTC).isoformat(), "artifacts": listed}
    put_object(kiln, f"images/{image_id}/manifest.json", json.dumps(manifest).encode())
    view = kiln.call("GET", f"{V3}/images/{image_id}/manifest", tenant="alpha")
    assert view.status_code == 200, view.body
    by_type = {entry["type"]: entry for entry in view.json_body["artifacts"]}
    cyclonedx, spdx = documents()
    for kind, data in ((MediaType.SBOM_CYCLONEDX, cyclonedx), (MediaType.SBOM_SPDX, spdx)):
        url = by_type[kind]["download_url"]
        assert requests.get(url, timeout=10).content == data
