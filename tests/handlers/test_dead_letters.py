"""No silent loss of results: a build event the handler cannot handle is reported failed (Lambda's
partial batch response), comes back, lands in the queue's dead-letter queue after
maxReceiveCount receives, and the cleanup schedule names it; the good messages of its batch are
handled once. Driven as Lambda drives it: real (moto) queues, the local SQS driver, app.py."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

import app as app_module
from chalicelib import observability
from chalicelib.config import (
    BUILD_EVENTS_QUEUE,
    GLANCE_IMPORTS_QUEUE,
    UPLOAD_EVENTS_QUEUE,
    dead_letter_queue_name,
)
from chalicelib.domain.builds import events
from infra import resources
from infra.local.event_sources import SqsPoller
from tests.conftest import Kiln
from tests.ims.helpers import V3, create_job, public_key, ready_recipe

REGION = "us-east-1"


def sqs() -> Any:
    return boto3.client("sqs", region_name=REGION)


def poller(kiln: Kiln, queue: str, handler: Any) -> SqsPoller:
    """The local driver, retrying a failed message at once (retry_seconds=0)."""
    url = kiln.provisioned.queue_urls[queue]
    arn = sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return SqsPoller(url, arn["Attributes"]["QueueArn"], handler, 10, threading.Event(), REGION, 0)


def drive(driver: SqsPoller, limit: int = 20) -> list[int]:
    """Poll until the queue gives nothing: the number of messages each batch held."""
    batches = []
    while (handled := driver.poll_once()) and len(batches) < limit:
        batches.append(handled)
    return batches


def depth(url: str) -> int:
    attributes = sqs().get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def cleanup_report(kiln: Kiln) -> dict[str, list[str]]:
    event = kiln.client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
    )
    return dict(kiln.client.lambda_.invoke("on_cleanup_schedule", event).payload)


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def read(stream: io.StringIO) -> list[dict[str, Any]]:
    """The structured log lines written since the last read."""
    lines = json_lines(stream.getvalue())
    stream.seek(0)
    stream.truncate()
    return lines


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Kiln's structured log, as its Powertools handler writes it (that handler keeps the
    stream it was made with, so capsys sees it only in the test that made the logger)."""
    handler = observability.logger().registered_handler
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


def two_jobs(kiln: Kiln) -> tuple[str, str]:
    """Two jobs, each with a registered host of its own to run it."""
    recipe, key = ready_recipe(kiln), public_key(kiln)
    jobs = []
    for xname in ("host-a", "host-b"):
        kiln.register_host(xname=xname)
        response = create_job(kiln, recipe["id"], key["id"])
        assert response.status_code == 201, response.body
        jobs.append(str(response.json_body["id"]))
    return jobs[0], jobs[1]


def progress(job_id: str, status: str = "fetching_recipe") -> dict[str, Any]:
    return {
        "type": "progress",
        "job_id": job_id,
        "status": status,
        "node": "host-a",
        "time": time.time(),
    }


def job_status(kiln: Kiln, job_id: str) -> str:
    return str(kiln.call("GET", f"{V3}/jobs/{job_id}").json_body["status"])


@pytest.fixture
def handled(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[Any], set[str]]]:
    """Every message handle_one is given, and a set of job ids whose events hit a bug: a
    RuntimeError, as a coding error in the domain would raise."""
    seen: list[Any] = []
    buggy: set[str] = set()
    real = events.handle_one

    def handle_one(message: Any, box: Any) -> str:
        seen.append(message)
        if isinstance(message, dict) and message.get("job_id") in buggy:
            raise RuntimeError("a bug in the domain")
        return real(message, box)

    monkeypatch.setattr(events, "handle_one", handle_one)
    yield seen, buggy


def test_poisoned_build_events_are_retried_dead_lettered_and_reported(
    kiln: Kiln,
    handled: tuple[list[Any], set[str]],
    log_output: io.StringIO,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen, buggy = handled
    job_a, job_b = two_jobs(kiln)
    poisoned_job = str(uuid.uuid4())
    buggy.add(poisoned_job)
    url = kiln.provisioned.queue_urls[BUILD_EVENTS_QUEUE]
    bodies = [
        json.dumps(progress(job_a)),
        "this is not JSON {",
        json.dumps({"type": "result", "job_id": poisoned_job, "outcome": "success"}),
        json.dumps([1, 2]),  # JSON, not an object
        json.dumps(progress(job_b)),
    ]
    for body in bodies:
        sqs().send_message(QueueUrl=url, MessageBody=body)
    read(log_output)

    batches = drive(poller(kiln, BUILD_EVENTS_QUEUE, app_module.on_build_event))

    # first the whole batch, then only the three poisoned messages, once per receive up to
    # maxReceiveCount; the next receive moves them to the dead-letter queue
    assert batches == [5] + [3] * (resources.MAX_RECEIVE_COUNT - 1)
    good = [m for m in seen if isinstance(m, dict) and m.get("type") == "progress"]
    assert sorted(m["job_id"] for m in good) == sorted([job_a, job_b])  # each handled once
    assert job_status(kiln, job_a) == job_status(kiln, job_b) == "fetching_recipe"
    assert depth(url) == 0
    dead = kiln.provisioned.dead_letter_urls[dead_letter_queue_name(BUILD_EVENTS_QUEUE)]
    assert depth(dead) == 3

    failures = [x for x in read(log_output) if x.get("level") == "ERROR"]
    assert {line["message"] for line in failures} == {
        "build event failed; it will be retried, then dead-lettered"
    }
    assert len(failures) == 3 * resources.MAX_RECEIVE_COUNT
    bug = [line for line in failures if line.get("job_id") == poisoned_job]
    assert len(bug) == resources.MAX_RECEIVE_COUNT
    assert all(line["correlation_id"] == poisoned_job for line in bug)
    assert all("a bug in the domain" in line["problem"] for line in bug)
    unreadable = [line for line in failures if line.get("job_id") is None]
    assert unreadable and all("correlation_id" not in line for line in unreadable)

    capsys.readouterr()
    report = cleanup_report(kiln)
    (line,) = report["dead_letters"]
    assert line.startswith("kiln-build-events-dlq: 3 message(s); "), line
    assert f"job {poisoned_job} (result)" in line
    assert "(not JSON)" in line and "(not a JSON object)" in line
    alarm = [x for x in read(log_output) if x.get("message") == "messages in dead-letter queues"]
    assert alarm and alarm[0]["level"] == "ERROR" and alarm[0]["dead_letters"] == 3
    emitted = json_lines(capsys.readouterr().out)  # metrics print to stdout when flushed
    metrics = [entry["DeadLetters"] for entry in emitted if "DeadLetters" in entry]
    assert metrics and metrics[0] in (3.0, [3.0])

    # the report looks without taking: the next run still sees all three
    assert cleanup_report(kiln)["dead_letters"][0].startswith("kiln-build-events-dlq: 3 ")
    assert depth(dead) == 3


def test_a_batch_with_no_failure_is_all_acknowledged(
    kiln: Kiln, handled: tuple[list[Any], set[str]]
) -> None:
    seen, _ = handled
    job_a, job_b = two_jobs(kiln)
    url = kiln.provisioned.queue_urls[BUILD_EVENTS_QUEUE]
    for job_id in (job_a, job_b):
        sqs().send_message(QueueUrl=url, MessageBody=json.dumps(progress(job_id)))
    assert drive(poller(kiln, BUILD_EVENTS_QUEUE, app_module.on_build_event)) == [2]
    assert [m["job_id"] for m in seen if m.get("type") == "progress"] == [job_a, job_b]
    assert depth(url) == 0
    assert cleanup_report(kiln)["dead_letters"] == []


def test_each_message_logs_with_its_own_job_id(
    kiln: Kiln, handled: tuple[list[Any], set[str]], log_output: io.StringIO
) -> None:
    """Two job messages around a node heartbeat, in one batch: each line carries its own
    message's job id, and the heartbeat's none (not the job before it)."""
    job_a, job_b = two_jobs(kiln)
    heartbeat = {
        "type": "node_heartbeat",
        "xname": "host-a",
        "arch": "x86_64",
        "recipe_types": ["kiln-debian", "kiln-noop"],
        "job_types": ["create", "customize"],
        "accepting": True,
        "current_job": job_a,
        "time": time.time(),
    }
    url = kiln.provisioned.queue_urls[BUILD_EVENTS_QUEUE]
    for message in (progress(job_a), heartbeat, progress(job_b)):
        sqs().send_message(QueueUrl=url, MessageBody=json.dumps(message))
    log = observability.logger()
    level = log.log_level
    log.setLevel("DEBUG")  # a heartbeat's "build event" line is a debug line
    read(log_output)
    try:
        assert drive(poller(kiln, BUILD_EVENTS_QUEUE, app_module.on_build_event)) == [3]
    finally:
        log.setLevel(level)

    lines = [x for x in read(log_output) if x.get("message") == "build event"]
    assert [(x["event_type"], x.get("correlation_id")) for x in lines] == [
        ("progress", job_a),
        ("node_heartbeat", None),
        ("progress", job_b),
    ]


@pytest.mark.parametrize(
    ("queue", "handler", "kind"),
    [
        (UPLOAD_EVENTS_QUEUE, "on_upload_event", "not JSON"),
        (GLANCE_IMPORTS_QUEUE, "on_glance_import", "not JSON"),
        (UPLOAD_EVENTS_QUEUE, "on_upload_event", "not a JSON object"),
        (GLANCE_IMPORTS_QUEUE, "on_glance_import", "not a JSON object"),
    ],
)
def test_the_other_queues_dead_letter_what_they_cannot_read(
    kiln: Kiln, queue: str, handler: str, kind: str
) -> None:
    """Upload events and Glance imports no longer drop an unreadable message unseen."""
    url = kiln.provisioned.queue_urls[queue]
    body = "<xml/>" if kind == "not JSON" else json.dumps(["a", "list"])
    message_id = sqs().send_message(QueueUrl=url, MessageBody=body)["MessageId"]
    batches = drive(poller(kiln, queue, getattr(app_module, handler)))
    assert batches == [1] * resources.MAX_RECEIVE_COUNT
    assert cleanup_report(kiln)["dead_letters"] == [
        f"{dead_letter_queue_name(queue)}: 1 message(s); message {message_id} ({kind})"
    ]


def test_the_report_says_what_each_dead_letter_was_about(kiln: Kiln) -> None:
    dead = kiln.provisioned.dead_letter_urls
    s3_event = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"key": "k/1"}}}]}
    sent = {
        "kiln-builds-x86_64-dlq": [{"job": {"job_id": "job-1", "arch": "x86_64"}, "token": "t"}],
        "kiln-build-events-dlq": [progress(f"job-{n}") for n in range(2, 7)],
        "kiln-upload-events-dlq": [s3_event],
        "kiln-glance-imports-dlq": [{"image_id": "image-1", "task": "task-1"}],
    }
    for name, messages in sent.items():
        for message in messages:
            sqs().send_message(QueueUrl=dead[name], MessageBody=json.dumps(message))

    lines = cleanup_report(kiln)["dead_letters"]
    assert lines[0] == "kiln-builds-x86_64-dlq: 1 message(s); job job-1 (build job)"
    assert lines[1].startswith("kiln-build-events-dlq: 5 message(s); job job-")
    assert lines[1].count("(progress)") == 3  # a peek at a few, not all
    assert lines[2:] == [
        "kiln-upload-events-dlq: 1 message(s); object k/1 (S3 notification)",
        "kiln-glance-imports-dlq: 1 message(s); image image-1 (import)",
    ]
    assert all(depth(dead[name]) == len(messages) for name, messages in sent.items())
