"""The composer face over HTTP: composes fan out to one build per image, statuses walk with the
host's events, uploads, logs, metadata and build plans are served, bad input
is refused (test_compose_errors.py)."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import requests
import yaml

from tests.composer.helpers import (
    API,
    KEY,
    MIRROR,
    compose_body,
    execution_input,
    image,
    job_ids,
    post,
    s3,
    status,
)
from tests.conftest import Kiln


def test_a_two_arch_compose_starts_one_build_per_image(hosts: Kiln) -> None:
    body = compose_body(image("x86_64"), image("aarch64", "vsphere"))
    response = post(hosts, body)
    assert response.status_code == 201, response.body
    created = response.json_body
    assert created["kind"] == "ComposeId" and created["href"] == f"{API}/compose"
    ids = job_ids(hosts, created["id"])
    assert len(ids) == 2
    first, second = (execution_input(hosts, i) for i in ids)
    assert (first["arch"], second["arch"]) == ("x86_64", "aarch64")
    assert first["upload"] == {"type": "aws.s3", "options": {"region": None}}
    assert first["log_chunk_prefix"] == f"jobs/{ids[0]}/log/"
    archive = s3().get_object(Bucket=hosts.provisioned.bucket, Key=first["recipe"]["key"])
    with tarfile.open(fileobj=io.BytesIO(archive["Body"].read()), mode="r:gz") as tar:
        member = tar.extractfile("recipe.yaml")
        assert member is not None
        recipe = yaml.safe_load(member.read())
    assert recipe["suite"] == "bookworm" and recipe["mirror"] == MIRROR
    assert "htop" in recipe["packages"] and recipe["kernel"] is True
    assert recipe["groups"] == ["wheel"]
    assert recipe["users"] == [{"name": "alice", "groups": ["wheel"], "ssh_authorized_keys": [KEY]}]
    assert recipe["disk"] == {"formats": ["qcow2"], "min_size": "3072M"}
    second_recipe_key = second["recipe"]["key"]
    assert second_recipe_key.endswith("/1/recipe.tar.gz")
    current = status(hosts, created["id"])
    assert current["status"] == "pending" and current["kind"] == "ComposeStatus"
    assert [s["status"] for s in current["image_statuses"]] == ["pending", "pending"]
    assert current["image_status"] == current["image_statuses"][0]
    # IMS lists do not show compose builds
    assert hosts.call("GET", "/apis/ims/v3/jobs").json_body == []


def _progress(kiln: Kiln, job_id: str, state: str, upload: dict[str, Any] | None = None) -> None:
    event = {"type": "progress", "job_id": job_id, "status": state, "node": "x86-host"}
    if upload is not None:
        event["upload_status"] = upload
    kiln.build_events(event)


def _put(kiln: Kiln, key: str, data: bytes) -> None:
    s3().put_object(Bucket=kiln.provisioned.bucket, Key=key, Body=data)


def test_images_of_one_arch_wait_for_a_free_node_then_go(hosts: Kiln) -> None:
    """A host builds one job at a time: the second x86_64 image waits in Kiln (not in the build
    queue, where the state machine's heartbeat clock would run) until the first one ends."""
    compose_id = post(hosts, compose_body(image(), image(image_type="vsphere"))).json_body["id"]
    (first,) = job_ids(hosts, compose_id)
    assert [s["status"] for s in status(hosts, compose_id)["image_statuses"]] == [
        "pending",
        "pending",
    ]
    _progress(hosts, first, "building_image")
    assert len(job_ids(hosts, compose_id)) == 1
    hosts.build_events(
        {"type": "result", "outcome": "failure", "job_id": first, "error": {"Error": "E: x"}}
    )
    ids = job_ids(hosts, compose_id)
    assert len(ids) == 2 and ids[0] == first  # the ended job's node took the waiting one
    assert status(hosts, compose_id)["status"] == "pending"


def test_image_status_walks_to_success_with_upload_metadata_and_plan(hosts: Kiln) -> None:
    hosts.register_host("x86_64", xname="x86-host-2")  # both x86_64 images build at once
    compose_id = post(
        hosts,
        compose_body(
            image(),
            image(
                image_type="aws",
                upload_options={"region": "eu-west-1", "share_with_accounts": ["123456789012"]},
            ),
        ),
    ).json_body["id"]
    s3_job, ami_job = job_ids(hosts, compose_id)
    assert execution_input(hosts, ami_job)["upload"]["options"]["share_with_accounts"] == [
        "123456789012"
    ]
    walk = []
    for state, upload in (
        ("fetching_recipe", None),
        ("building_image", None),
        ("uploading", {"type": "aws", "status": "running", "options": {}}),
        ("registering", {"type": "aws", "status": "running", "options": {}}),
    ):
        _progress(hosts, ami_job, state, upload)
        walk.append(status(hosts, compose_id)["image_statuses"][1])
    assert [w["status"] for w in walk] == ["pending", "building", "uploading", "registering"]
    assert walk[2]["upload_status"] == {
        "type": "aws",
        "status": "running",
        "options": {"ami": "", "region": "eu-west-1"},
    }
    packages = [
        {
            "type": "deb",
            "name": "base-files",
            "version": "12.4+deb12u5",
            "release": "",
            "epoch": "",
            "arch": "amd64",
            "sigmd5": "0" * 32,
            "sha256": "1" * 64,
        }
    ]
    plan = {"format": "kiln-build-plan/1", "packages": [{"name": "base-files"}]}
    for job_id in (s3_job, ami_job):
        prefix = f"images/{execution_input(hosts, job_id)['image_id']}/"
        _put(hosts, f"{prefix}disk.qcow2", b"QFI\xfb")
        _put(hosts, f"{prefix}packages.json", json.dumps(packages).encode())
        _put(hosts, f"{prefix}build-plan.json", json.dumps(plan).encode())
        upload = (
            {
                "type": "aws",
                "status": "success",
                "options": {"ami": "ami-0123", "region": "eu-west-1"},
            }
            if job_id == ami_job
            else {"type": "aws.s3", "status": "success", "options": {"key": f"{prefix}disk.qcow2"}}
        )
        hosts.build_events(
            {
                "type": "result",
                "outcome": "success",
                "job_id": job_id,
                "output": {
                    "manifest": {"etag": "e"},
                    "artifacts": [
                        {
                            "key": f"{prefix}disk.qcow2",
                            "type": "application/vnd.kiln.image.disk.qcow2",
                        },
                        {
                            "key": f"{prefix}packages.json",
                            "type": "application/vnd.kiln.packages+json",
                        },
                        {
                            "key": f"{prefix}build-plan.json",
                            "type": "application/vnd.kiln.build-plan+json",
                        },
                    ],
                    "upload_status": upload,
                },
            }
        )
    done = status(hosts, compose_id)
    assert done["status"] == "success"
    s3_status, ami_status = done["image_statuses"]
    assert ami_status["upload_status"] == {
        "type": "aws",
        "status": "success",
        "options": {"ami": "ami-0123", "region": "eu-west-1"},
    }
    url = s3_status["upload_status"]["options"]["url"]
    assert requests.get(url, timeout=10).content == b"QFI\xfb"
    metadata = hosts.call("GET", f"{API}/composes/{compose_id}/metadata").json_body
    assert metadata["kind"] == "ComposeMetadata" and metadata["packages"] == packages
    manifests = hosts.call("GET", f"{API}/composes/{compose_id}/manifests").json_body
    assert manifests["manifests"] == [plan, plan]


def test_any_failed_image_fails_the_compose_with_an_error_per_image(hosts: Kiln) -> None:
    compose_id = post(hosts, compose_body(image(), image("aarch64"))).json_body["id"]
    first, second = job_ids(hosts, compose_id)
    failure = {"type": "result", "outcome": "failure", "job_id": second}
    upload_failed = "UploadFailed: upload to aws.s3 failed: denied"
    hosts.build_events({**failure, "error": {"Error": upload_failed}})
    assert status(hosts, compose_id)["status"] == "pending"  # the other image still builds
    hosts.build_events({**failure, "job_id": first, "error": {"Error": "States.Timeout"}})
    done = status(hosts, compose_id)
    assert done["status"] == "failure"
    errors = [s["error"] for s in done["image_statuses"]]
    assert [e["id"] for e in errors] == [27, 11]
    assert errors[1]["details"] == "upload to aws.s3 failed: denied"
    assert done["image_statuses"][1]["upload_status"]["status"] == "failure"


def test_gcp_and_azure_images_fail_with_a_reason_and_build_nothing(hosts: Kiln) -> None:
    gcp = image(image_type="gcp", upload_options={"region": "eu", "bucket": "b"})
    compose_id = post(hosts, compose_body(gcp)).json_body["id"]
    assert job_ids(hosts, compose_id) == []
    done = status(hosts, compose_id)
    assert done["status"] == "failure"
    assert done["image_status"]["error"]["id"] == 13
    assert "Google Cloud credentials" in done["image_status"]["error"]["details"]


def test_logs_stream_while_the_build_runs_and_resume_from_an_offset(hosts: Kiln) -> None:
    compose_id = post(hosts, compose_body()).json_body["id"]
    (job_id,) = job_ids(hosts, compose_id)
    _progress(hosts, job_id, "building_image")
    _put(hosts, f"jobs/{job_id}/log/000000.log", b"line one\n")
    _put(hosts, f"jobs/{job_id}/log/000001.log", b"line two\n")
    logs = hosts.call("GET", f"{API}/composes/{compose_id}/logs").json_body
    (build,) = logs["image_builds"]
    assert build["log"] == "line one\nline two\n" and build["streaming"] is True
    assert build["size"] == 18 and build["status"] == "building"
    later = hosts.call("GET", f"{API}/composes/{compose_id}/logs?offset=14").json_body
    assert later["image_builds"][0]["log"] == "two\n"
    _put(hosts, f"jobs/{job_id}/build.log", b"line one\nline two\nline three\n")
    hosts.build_events(
        {
            "type": "result",
            "outcome": "failure",
            "job_id": job_id,
            "error": {"Error": "BuildFailed: E: broken"},
        }
    )
    # the failed job's final log: the host uploads it before answering
    from chalicelib.adapters.models import JobModel

    JobModel.get(job_id).update(actions=[JobModel.build_log_key.set(f"jobs/{job_id}/build.log")])
    final = hosts.call("GET", f"{API}/composes/{compose_id}/logs?offset=9").json_body
    assert final["image_builds"][0] == {
        "image_index": 0,
        "arch": "x86_64",
        "image_type": "guest-image",
        "status": "failure",
        "log": "line two\nline three\n",
        "offset": 9,
        "size": 29,
        "streaming": False,
    }


def test_a_compose_no_node_serves_waits_pending(kiln: Kiln) -> None:
    response = post(kiln, compose_body(image("aarch64")))
    assert response.status_code == 201
    assert status(kiln, response.json_body["id"])["image_status"]["status"] == "pending"


def test_composes_are_tenant_scoped(hosts: Kiln) -> None:
    compose_id = post(hosts, compose_body()).json_body["id"]
    other = hosts.call("GET", f"{API}/composes/{compose_id}", tenant="other")
    assert other.status_code == 404 and other.json_body["id"] == "15"


def test_a_composes_jobs_are_not_ims_jobs(hosts: Kiln) -> None:
    """IMS's job routes see IMS's own jobs only: a compose's are not listed, shown, changed or
    deleted through them (they are the composer's)."""
    compose_id = post(hosts, compose_body(image("x86_64"))).json_body["id"]
    (job_id,) = job_ids(hosts, compose_id)
    assert hosts.call("GET", "/apis/ims/v3/jobs", role="admin").json_body == []
    for method, role in (("GET", "admin"), ("DELETE", "admin"), ("PATCH", "worker")):
        body = {"job_status": "error"} if method == "PATCH" else None
        answer = hosts.call(method, f"/apis/ims/v3/jobs/{job_id}", body, role=role)
        assert answer.status_code == 404, (method, answer.body)
    assert status(hosts, compose_id)["image_status"]["status"] == "pending"
