"""Every composer error a failed image build can show, each produced the way it happens: a
host's failure answer (a code and text, never words matched), the state machine's timeout,
the schedule ending a build nobody serves or answers, a target Kiln refuses, a cancel."""

from __future__ import annotations

from typing import Any

import pytest

from tests.composer.helpers import compose_body, image, job_ids, post, status
from tests.conftest import Kiln


def _fail(kiln: Kiln, job_id: str, error: str) -> None:
    kiln.build_events(
        {"type": "result", "outcome": "failure", "job_id": job_id, "error": {"Error": error}}
    )


def _schedule(kiln: Kiln) -> None:
    event = kiln.client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
    )
    kiln.client.lambda_.invoke("on_cleanup_schedule", event)


@pytest.mark.parametrize(
    ("error", "error_id", "details"),
    [
        ("BuildFailed: E: Unable to locate package nope", 10, "E: Unable to locate package nope"),
        ("HostError: OSError: disk full", 10, "OSError: disk full"),
        ("UploadFailed: upload to aws failed: snapshot s-1 failed", 11, "upload to aws failed"),
        ("RegisterFailed: upload to aws failed: AMI ami-1 is failed", 12, "AMI ami-1 is failed"),
        ("States.Timeout", 27, "went silent"),
        ("States.HeartbeatTimeout", 27, "went silent"),
        ("Cancelled: the job was deleted", 29, "the job was deleted"),
        ("UnsupportedArch: no build queue for this arch", 10, "no build queue"),
    ],
)
def test_a_host_failure_shows_the_error_its_code_names(
    hosts: Kiln, error: str, error_id: int, details: str
) -> None:
    compose_id = post(hosts, compose_body(image())).json_body["id"]
    (job_id,) = job_ids(hosts, compose_id)
    _fail(hosts, job_id, error)
    found = status(hosts, compose_id)["image_status"]
    assert found["status"] == "failure"
    assert found["error"]["id"] == error_id
    assert details in found["error"]["details"]


def test_words_in_a_failure_text_never_pick_the_error(hosts: Kiln) -> None:
    """A build failure that mentions registering, uploading or a silent host is a build
    failure (10): only the code says otherwise."""
    compose_id = post(hosts, compose_body(image())).json_body["id"]
    (job_id,) = job_ids(hosts, compose_id)
    _fail(hosts, job_id, "BuildFailed: registering no build node went silent; upload to x")
    assert status(hosts, compose_id)["image_status"]["error"]["id"] == 10


def test_an_image_no_build_node_serves_shows_error_28(kiln: Kiln) -> None:
    """No registered node serves aarch64: the image waits, then the schedule ends it. The
    reason says "no registered, healthy build node": still 28, never 12 (registering)."""
    kiln.register_host("x86_64", xname="x86-host")
    compose_id = post(kiln, compose_body(image("aarch64"))).json_body["id"]
    assert status(kiln, compose_id)["image_status"]["status"] == "pending"
    kiln.configure(unserved_wait_seconds=0)
    _schedule(kiln)
    found = status(kiln, compose_id)["image_status"]
    assert found["status"] == "failure"
    assert found["error"]["id"] == 28, found["error"]
    assert "no registered, healthy build node" in found["error"]["details"]


def test_a_build_no_one_answers_is_ended_by_the_schedule_with_error_27(hosts: Kiln) -> None:
    compose_id = post(hosts, compose_body(image())).json_body["id"]
    hosts.configure(job_stale_seconds=0)
    _schedule(hosts)
    found: dict[str, Any] = status(hosts, compose_id)["image_status"]
    assert found["error"]["id"] == 27 and "abandoned" in found["error"]["details"]


def test_a_target_kiln_cannot_reach_shows_error_13(hosts: Kiln) -> None:
    gcp = image(image_type="gcp", upload_options={"region": "eu", "bucket": "b"})
    compose_id = post(hosts, compose_body(gcp)).json_body["id"]
    found = status(hosts, compose_id)["image_status"]
    assert found["error"]["id"] == 13 and "Google Cloud credentials" in found["error"]["details"]
