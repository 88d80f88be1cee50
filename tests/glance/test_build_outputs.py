"""One registry: an image an IMS job builds shows in Glance, for its tenant only, and its
data (the build's artifact) downloads with the hashes Glance computed."""

from __future__ import annotations

import hashlib

import boto3
import pytest

from tests.conftest import Kiln
from tests.glance.conftest import Glance
from tests.ims.helpers import V3, create_job, public_key, put_object, ready_recipe

ROOTFS = "application/vnd.cray.image.rootfs.squashfs"
QCOW2 = "application/vnd.kiln.image.disk.qcow2"


def built_job(kiln: Kiln, tenant: str, artifacts: list[dict]) -> dict:
    kiln.register_host()
    recipe, key = ready_recipe(kiln, tenant), public_key(kiln, tenant)
    job = create_job(kiln, recipe["id"], key["id"], tenant).json_body
    result = {
        "type": "result",
        "outcome": "success",
        "job_id": job["id"],
        "output": {"manifest": {"etag": "e"}, "artifacts": artifacts},
    }
    kiln.build_events(result)
    kiln.build_events(result)  # replayed: still one Glance image
    return dict(kiln.call("GET", f"{V3}/jobs/{job['id']}", tenant=tenant).json_body)


def test_an_ims_build_appears_in_glance_for_its_tenant(glance: Glance) -> None:
    data = b"squashfs-bytes" * 5000
    key = "images/built/rootfs"
    put_object(glance.kiln, key, data)
    artifacts = [
        {"key": "images/built/kernel", "type": "application/vnd.cray.image.kernel"},
        {"key": key, "type": ROOTFS, "size": len(data)},
    ]
    job = built_job(glance.kiln, "alpha", artifacts)
    listed = glance.call("GET", "/v2/images").json_body["images"]
    assert len(listed) == 1
    image = listed[0]
    assert image["status"] == "importing" and image["visibility"] == "private"
    assert image["kiln_source"] == "ims" and image["kiln_job_id"] == job["id"]
    assert image["kiln_ims_image_id"] == job["resultant_image_id"]
    assert (image["disk_format"], image["architecture"]) == ("raw", "x86_64")
    assert glance.run_imports() == 1
    shown = glance.show(image["id"]).json_body
    assert shown["status"] == "active" and shown["size"] == len(data)
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    got = glance.call(
        "GET",
        f"/v2/images/{image['id']}/file",
        headers={**glance.headers("alpha"), "Accept": "application/octet-stream"},
    )
    assert got.status_code == 200 and got.body == data
    assert glance.call("GET", "/v2/images", tenant="beta").json_body["images"] == []
    assert glance.show(image["id"], tenant="beta").status_code == 404


def test_deleting_the_glance_record_keeps_the_build_artifact(glance: Glance) -> None:
    put_object(glance.kiln, "images/b2/disk.qcow2", b"qcow")
    artifacts = [{"key": "images/b2/disk.qcow2", "type": "application/vnd.kiln.image.disk.qcow2"}]
    built_job(glance.kiln, "alpha", artifacts)
    glance.run_imports()
    image = glance.call("GET", "/v2/images").json_body["images"][0]
    assert (image["disk_format"], image["status"]) == ("qcow2", "active")
    assert glance.call("DELETE", f"/v2/images/{image['id']}").status_code == 204
    s3 = boto3.client("s3", region_name="us-east-1")
    assert (
        s3.get_object(Bucket=glance.kiln.provisioned.bucket, Key="images/b2/disk.qcow2")[
            "Body"
        ].read()
        == b"qcow"
    )


def test_a_job_without_an_image_artifact_registers_nothing(glance: Glance) -> None:
    built_job(glance.kiln, "alpha", [{"key": "x/log", "type": "text/plain"}])
    assert glance.call("GET", "/v2/images").json_body["images"] == []
    assert glance.run_imports() == 0


def test_a_glance_registration_that_failed_is_done_when_the_result_comes_back(
    glance: Glance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import queue refuses once: the result is reported failed (SQS delivers it again),
    and the redelivery puts the image in Glance, then hashes it."""
    from chalicelib.adapters.work_queue import WorkQueue

    kiln = glance.kiln
    put_object(kiln, "images/b3/disk.qcow2", b"qcow2-bytes")
    kiln.register_host()
    recipe, key = ready_recipe(kiln, "alpha"), public_key(kiln, "alpha")
    job = create_job(kiln, recipe["id"], key["id"], "alpha").json_body
    result = {
        "type": "result",
        "outcome": "success",
        "job_id": job["id"],
        "output": {
            "manifest": {"etag": "e"},
            "artifacts": [{"key": "images/b3/disk.qcow2", "type": QCOW2}],
        },
    }
    original = WorkQueue.send
    with monkeypatch.context() as patch:

        def refuse(self: WorkQueue, body: dict) -> None:
            raise RuntimeError("SQS is unreachable")

        patch.setattr(WorkQueue, "send", refuse)
        kiln.build_events(result, failing=1)
    assert WorkQueue.send is original
    assert kiln.call("GET", f"{V3}/jobs/{job['id']}", tenant="alpha").json_body["status"] == (
        "success"
    )
    kiln.build_events(result)  # SQS delivers it again
    assert glance.run_imports() == 1
    (image,) = glance.call("GET", "/v2/images", tenant="alpha").json_body["images"]
    assert image["status"] == "active" and image["kiln_job_id"] == job["id"]
