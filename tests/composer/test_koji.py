"""The composer's Koji target: a compose with ``koji`` reserves its build on the hub, builds its
images, then a ``koji-import`` job's host uploads them and imports the build, which the
stand-in hub (tests/koji_cg_hub.py) checks against Koji's content-generator rules.

The image builds' results come as build events (as a host sends them); the import runs the
build host's own code on the job message the state machine carries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.composer.helpers import API, compose_body, image, post, status
from tests.composer.koji_helpers import (
    KOJI_JOB_TYPES,
    PLAN,
    build_images,
    jobs,
    koji_section,
    run_import,
)
from tests.conftest import BUCKET, Kiln
from tests.koji_cg_hub import BUILDING, COMPLETE, FAILED, KojiCGHub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[KojiCGHub]:
    with KojiCGHub(tmp_path / "hub") as running:
        yield running


@pytest.fixture
def koji(kiln: Kiln, hub: KojiCGHub) -> Kiln:
    """Kiln configured with the hub, and build hosts that run images and imports."""
    kiln.configure(koji_hubs=hub.hub_setting())
    kiln.register_host("x86_64", xname="x86-host", job_types=KOJI_JOB_TYPES)
    kiln.register_host("x86_64", xname="x86-host-2", job_types=KOJI_JOB_TYPES)
    kiln.register_host("aarch64", xname="arm-host", job_types=KOJI_JOB_TYPES)
    return kiln


def test_a_koji_compose_reserves_builds_and_imports_images_logs_and_manifests(
    koji: Kiln, hub: KojiCGHub, tmp_path: Path
) -> None:
    body = compose_body(image(), image("aarch64"), koji=koji_section(hub))
    created = post(koji, body)
    assert created.status_code == 201, created.body
    compose_id = created.json_body["id"]
    reserved = status(koji, compose_id)
    assert reserved["status"] == "pending"
    assert reserved["koji_status"] == {"build_id": 1}
    assert hub.builds[1]["state"] == BUILDING and hub.builds[1]["nvr"] == (
        "debian-cloud-12-20261202.1"
    )
    logs = koji.call("GET", f"{API}/composes/{compose_id}/logs").json_body
    assert logs["koji"] == {"init": {"build_id": 1}, "import": {}}

    build_images(koji, compose_id)
    assert status(koji, compose_id)["status"] == "pending"  # the import is still to come
    (message,) = jobs(koji, compose_id, "koji-import")
    assert message["koji_import"]["build_id"] == 1 and message["arch"] == "x86_64"
    assert not hub.imports

    event = run_import(koji, message, tmp_path, hub.hub_setting())
    assert event["outcome"] == "success", event
    (imported,) = hub.imports
    assert hub.builds[1]["state"] == COMPLETE
    nvr = "debian-cloud-12-20261202.1"
    assert sorted(imported["files"]) == sorted(
        f"{nvr}.{arch}.guest-image.{suffix}"
        for arch in ("x86_64", "aarch64")
        for suffix in ("qcow2", "manifest.json", "log")
    )
    assert imported["files"][f"{nvr}.aarch64.guest-image.qcow2"].startswith(b"QFI\xfb")
    assert json.loads(imported["files"][f"{nvr}.x86_64.guest-image.manifest.json"]) == PLAN
    build = imported["metadata"]["build"]
    assert (build["task_id"], build["build_id"]) == (42, 1)
    assert {o["type"] for o in imported["metadata"]["output"]} == {"image", "log"}

    done = status(koji, compose_id)
    assert done["status"] == "success" and done["koji_status"] == {"build_id": 1}
    logs = koji.call("GET", f"{API}/composes/{compose_id}/logs").json_body
    assert logs["koji"] == {"init": {"build_id": 1}, "import": {"build_id": 1}}


def test_a_redelivered_last_result_starts_one_import(koji: Kiln, hub: KojiCGHub) -> None:
    compose_id = post(koji, compose_body(image(), image(), koji=koji_section(hub))).json_body["id"]
    build_images(koji, compose_id, deliveries=3)
    assert len(jobs(koji, compose_id, "koji-import")) == 1
    assert status(koji, compose_id)["status"] == "pending"


def test_a_refused_import_fails_the_compose_with_composers_error(
    koji: Kiln, hub: KojiCGHub, tmp_path: Path
) -> None:
    compose_id = post(koji, compose_body(image(), koji=koji_section(hub))).json_body["id"]
    build_images(koji, compose_id)
    (message,) = jobs(koji, compose_id, "koji-import")
    hub.faults["CGImport"] = "Build already exists: debian-cloud-12-20261202.1"
    event = run_import(koji, message, tmp_path, hub.hub_setting())
    assert event["outcome"] == "failure"
    done = status(koji, compose_id)
    assert done["status"] == "failure"
    # as composer: the images built, the compose failed
    assert [s["status"] for s in done["image_statuses"]] == ["success"]
    assert done["koji_status"] == {"build_id": 1}
    error = koji.call("GET", f"{API}/composes/{compose_id}/logs").json_body["koji"]["import"]
    assert (error["error"]["id"], error["error"]["reason"]) == (16, "Koji import failed")
    assert "Build already exists" in error["error"]["details"]
    assert hub.builds[1]["state"] == FAILED  # the reservation was given back


def test_an_upload_that_does_not_match_its_recorded_digest_is_not_imported(
    koji: Kiln, hub: KojiCGHub, tmp_path: Path
) -> None:
    compose_id = post(koji, compose_body(image(), koji=koji_section(hub))).json_body["id"]
    (built,) = build_images(koji, compose_id)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key=f"{built['artifact_prefix']}disk.qcow2", Body=b"changed")
    (message,) = jobs(koji, compose_id, "koji-import")
    event = run_import(koji, message, tmp_path, hub.hub_setting())
    assert "does not match its recorded SHA-256" in event["error"]["Error"]
    assert not hub.imports and status(koji, compose_id)["status"] == "failure"


def test_a_host_without_a_login_for_the_hub_fails_the_import(
    koji: Kiln, hub: KojiCGHub, tmp_path: Path
) -> None:
    compose_id = post(koji, compose_body(image(), koji=koji_section(hub))).json_body["id"]
    build_images(koji, compose_id)
    (message,) = jobs(koji, compose_id, "koji-import")
    event = run_import(koji, message, tmp_path, hubs="")
    assert "no login for Koji hub" in event["error"]["Error"]
    assert status(koji, compose_id)["status"] == "failure"


def test_a_failed_init_fails_every_image_at_once(koji: Kiln, hub: KojiCGHub) -> None:
    hub.faults["CGInitBuild"] = "Build already exists: debian-cloud-12-20261202.1"
    created = post(koji, compose_body(image(), image("aarch64"), koji=koji_section(hub)))
    assert created.status_code == 201, created.body
    compose_id = created.json_body["id"]
    assert jobs(koji, compose_id, "create") == []  # nothing built
    done = status(koji, compose_id)
    assert done["status"] == "failure" and "koji_status" not in done
    for image_status in done["image_statuses"]:
        assert image_status["error"]["id"] == 15
        assert "Build already exists" in image_status["error"]["details"]
    init = koji.call("GET", f"{API}/composes/{compose_id}/logs").json_body["koji"]["init"]
    assert init["error"]["id"] == 15


def test_a_failed_image_gives_the_reservation_back(koji: Kiln, hub: KojiCGHub) -> None:
    compose_id = post(koji, compose_body(image(), koji=koji_section(hub))).json_body["id"]
    (message,) = jobs(koji, compose_id, "create")
    failure = {"type": "result", "outcome": "failure", "job_id": message["job_id"]}
    koji.build_events({**failure, "error": {"Error": "BuildFailed: mmdebstrap failed"}})
    done = status(koji, compose_id)
    assert done["status"] == "failure" and done["koji_status"] == {"build_id": 1}
    assert hub.builds[1]["state"] == FAILED
    assert jobs(koji, compose_id, "koji-import") == []


def test_a_wrong_hub_password_fails_the_init(koji: Kiln, hub: KojiCGHub) -> None:
    wrong = json.dumps({hub.hub_url: {"user": "kiln", "password": "nope"}})
    koji.configure(koji_hubs=wrong)
    compose_id = post(koji, compose_body(image(), koji=koji_section(hub))).json_body["id"]
    init = koji.call("GET", f"{API}/composes/{compose_id}/logs").json_body["koji"]["init"]
    assert "login failed" in init["error"]["details"]
    assert not hub.builds


@pytest.mark.parametrize(
    ("change", "error_id", "text"),
    [
        ({"server": "https://koji.elsewhere/kojihub"}, 31, "is not a Koji hub this deployment"),
        ({"task_id": "42"}, 30, "koji.task_id must be a non-negative integer"),
        ({"task_id": -1}, 30, "koji.task_id must be a non-negative integer"),
        ({"version": "12-1"}, 30, "koji.version must be"),
        ({"release": ""}, 30, "koji.release must be"),
        ({"name": None}, 30, "koji.name required"),
        ({"extra": 1}, 30, "unknown field(s) koji.extra"),
    ],
)
def test_a_bad_koji_section_is_refused_and_reserves_nothing(
    koji: Kiln, hub: KojiCGHub, change: dict[str, Any], error_id: int, text: str
) -> None:
    response = post(koji, compose_body(image(), koji=koji_section(hub, **change)))
    assert response.status_code == 400
    assert response.json_body["id"] == str(error_id)
    assert text in response.json_body["details"]
    assert not hub.builds


def test_a_koji_section_that_is_not_an_object_is_refused(koji: Kiln) -> None:
    response = post(koji, compose_body(image(), koji="https://koji"))
    assert response.status_code == 400 and response.json_body["id"] == "30"
