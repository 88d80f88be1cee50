"""Every queue has a dead-letter queue, defined once in infra/resources.py and created by the
local provisioning; the local SQS driver answers a partial batch response as Lambda's event
source mapping with ReportBatchItemFailures does."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest
from chalice.app import SQSEventConfig

import app as app_module
from chalicelib.config import (
    BUILD_EVENTS_QUEUE,
    dead_letter_queue_name,
    queue_names,
)
from chalicelib.container import Container
from infra import resources
from infra.local import event_sources
from infra.local.event_sources import Schedule, SqsPoller, failed_message_ids
from infra.local.provision import Provisioned
from tests.conftest import REGION, Kiln, MotoStack

FOURTEEN_DAYS = 14 * 86400


def test_every_queue_has_a_dead_letter_queue() -> None:
    specs = resources.queues()
    assert [spec.name for spec in specs] == list(queue_names())
    for spec in specs:
        assert spec.dead_letter.name == f"{spec.name}-dlq"
        assert spec.dead_letter.retention_seconds == FOURTEEN_DAYS
        assert spec.max_receive_count == resources.MAX_RECEIVE_COUNT == 5
        policy = json.loads(spec.attributes("arn:dlq")["RedrivePolicy"])
        assert policy == {"deadLetterTargetArn": "arn:dlq", "maxReceiveCount": 5}
    assert {s.name for s in specs if s.name.startswith("kiln-builds-")} == {
        "kiln-builds-x86_64",
        "kiln-builds-aarch64",
    }


def test_queues_a_lambda_consumes_report_batch_item_failures() -> None:
    """The AWS deployment reads function_response_types for each event source mapping: every
    queue an app.py handler consumes needs ReportBatchItemFailures (else Lambda ignores the
    handler's answer and deletes failed messages with the rest); the build queues, which build
    hosts poll, have no mapping."""
    consumed = {
        source.queue
        for source in app_module.app.event_sources
        if isinstance(source, SQSEventConfig)
    }
    assert consumed
    for spec in resources.queues():
        expected = ("ReportBatchItemFailures",) if spec.name in consumed else ()
        assert spec.function_response_types == expected, spec.name
    assert consumed <= set(queue_names())


def test_provisioning_creates_the_dead_letter_queues_and_redrive_policies(
    aws: Provisioned,
) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    assert set(aws.dead_letter_urls) == {dead_letter_queue_name(n) for n in queue_names()}
    for name, url in aws.queue_urls.items():
        dead_url = aws.dead_letter_urls[f"{name}-dlq"]
        dead = sqs.get_queue_attributes(QueueUrl=dead_url, AttributeNames=["All"])["Attributes"]
        assert dead["MessageRetentionPeriod"] == str(FOURTEEN_DAYS)
        assert "RedrivePolicy" not in dead
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        policy = json.loads(attributes["RedrivePolicy"])
        assert policy["deadLetterTargetArn"] == dead["QueueArn"]
        assert int(policy["maxReceiveCount"]) == resources.MAX_RECEIVE_COUNT
    names = Container(sqs=sqs).dead_letters.names
    assert names == tuple(f"{name}-dlq" for name in queue_names())


def test_moto_server_moves_a_message_after_max_receive_count(moto_server: MotoStack) -> None:
    """What the local stack relies on (moto in server mode, as `make up` runs it): after
    maxReceiveCount receives without a delete, the next receive moves the message."""
    sqs = moto_server.client("sqs")
    url = moto_server.provisioned.queue_urls[BUILD_EVENTS_QUEUE]
    dead = moto_server.provisioned.dead_letter_urls[dead_letter_queue_name(BUILD_EVENTS_QUEUE)]
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(resources.MAX_RECEIVE_COUNT):
        got = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0).get("Messages", [])
        assert [m["Body"] for m in got] == ["poison"]
    assert sqs.receive_message(QueueUrl=url, VisibilityTimeout=0).get("Messages", []) == []
    moved = sqs.receive_message(QueueUrl=dead).get("Messages", [])
    assert [m["Body"] for m in moved] == ["poison"]


# -- the local driver -------------------------------------------------------------------------


class Handler:
    """A stand-in for an app.py SQS handler: answers what ``answer`` makes of the batch."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.batches: list[list[str]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.batches.append([r["body"] for r in event["Records"]])
        return self.answer(event["Records"])


def driver(aws: Provisioned, handler: Handler, retry_seconds: int = 1) -> SqsPoller:
    url = aws.queue_urls[BUILD_EVENTS_QUEUE]
    arn = f"arn:aws:sqs:{REGION}:123456789012:{BUILD_EVENTS_QUEUE}"
    return SqsPoller(url, arn, handler, 10, threading.Event(), REGION, retry_seconds)


def send(aws: Provisioned, *bodies: str) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    for body in bodies:
        sqs.send_message(QueueUrl=aws.queue_urls[BUILD_EVENTS_QUEUE], MessageBody=body)


def failing(*bodies: str) -> Any:
    def answer(records: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in records if r["body"] in bodies
            ]
        }

    return answer


def test_the_driver_deletes_all_but_the_reported_failures_which_come_back_later(
    aws: Provisioned,
) -> None:
    handler = Handler(failing("bad"))
    poller = driver(aws, handler, retry_seconds=1)
    send(aws, "good-1", "bad", "good-2")
    assert poller.poll_once() == 3
    assert poller.poll_once() == 0  # the failed one is invisible for retry_seconds
    time.sleep(1.5)
    assert poller.poll_once() == 1
    assert sorted(handler.batches[0]) == ["bad", "good-1", "good-2"]
    assert handler.batches[1] == ["bad"]


@pytest.mark.parametrize(
    "answer",
    [
        lambda records: {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]},
        lambda records: {"batchItemFailures": [{"itemIdentifier": ""}]},
        lambda records: {"batchItemFailures": [{"id": records[0]["messageId"]}]},
        lambda records: ["not", "a", "batch", "response"],
    ],
    ids=["unknown id", "empty id", "bad key", "not a response"],
)
def test_an_answer_lambda_cannot_read_fails_the_whole_batch(aws: Provisioned, answer: Any) -> None:
    handler = Handler(answer)
    poller = driver(aws, handler, retry_seconds=0)
    send(aws, "one", "two")
    assert poller.poll_once() == 2
    assert poller.poll_once() == 2  # both back (retry_seconds=0)


def test_a_handler_that_raises_leaves_the_whole_batch(aws: Provisioned) -> None:
    def explode(records: list[dict[str, Any]]) -> None:
        raise RuntimeError("the function crashed")

    poller = driver(aws, Handler(explode), retry_seconds=0)
    send(aws, "one", "two")
    with pytest.raises(RuntimeError):
        poller.poll_once()
    poller._handler = Handler(lambda records: None)  # type: ignore[assignment]
    assert poller.poll_once() == 2  # none was deleted
    assert poller.poll_once() == 0  # now they are


@pytest.mark.parametrize(
    ("response", "failed"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "c"}]}, {"a", "c"}),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, {"a", "b", "c"}),
        ({"batchItemFailures": [{"itemIdentifier": "z"}]}, {"a", "b", "c"}),
        ({"batchItemFailures": ["b"]}, {"a", "b", "c"}),
        ("b", {"a", "b", "c"}),
    ],
)
def test_failed_message_ids_reads_a_partial_batch_response_as_lambda_does(
    response: Any, failed: set[str]
) -> None:
    assert failed_message_ids(response, ["a", "b", "c"]) == failed


def test_the_local_stack_drives_the_schedule_and_every_queue_handler(
    kiln: Kiln, monkeypatch: pytest.MonkeyPatch
) -> None:
    """@app.schedule registers a ScheduledEventConfig: the local driver fires it (so the
    cleanup, with its dead-letter report, runs under `make up`), beside one poller per queue."""
    fired = threading.Event()
    monkeypatch.setattr(app_module, "on_cleanup_schedule", lambda event, context: fired.set())
    stop = threading.Event()
    threads = event_sources.start(app_module, kiln.provisioned.queue_urls, REGION, 0.05, stop)
    try:
        assert fired.wait(10)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert sum(isinstance(t, Schedule) for t in threads) == 1
    polled = {t.name for t in threads if isinstance(t, SqsPoller)}
    consumed = [s.queue for s in app_module.app.event_sources if isinstance(s, SQSEventConfig)]
    assert polled == {f"poll-{queue}" for queue in consumed}
