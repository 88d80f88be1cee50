"""The `make up` stack loses no message silently: a build event nobody can handle is retried by
the local SQS driver, moved to the build-events dead-letter queue, and reported by the cleanup
schedule in the stack's log."""

from __future__ import annotations

import time
import uuid

import boto3
import pytest

from chalicelib.config import BUILD_EVENTS_QUEUE, dead_letter_queue_name
from infra.local.process import StackProcess

pytestmark = pytest.mark.slow


def test_a_poisoned_build_event_reaches_the_dead_letter_queue_and_the_report(
    stack: StackProcess,
) -> None:
    sqs = boto3.client(
        "sqs",
        region_name=stack.info["region"],
        endpoint_url=stack.info["aws_endpoint_url"],
        aws_access_key_id="kiln-local",
        aws_secret_access_key="kiln-local",
    )
    marker = f"not JSON {uuid.uuid4()}"
    sqs.send_message(QueueUrl=stack.info["queues"][BUILD_EVENTS_QUEUE], MessageBody=marker)
    dead = sqs.get_queue_url(QueueName=dead_letter_queue_name(BUILD_EVENTS_QUEUE))["QueueUrl"]

    deadline = time.time() + 120  # 5 receives, each retried after 2 s locally
    bodies: list[str] = []
    while time.time() < deadline and marker not in bodies:
        got = sqs.receive_message(QueueUrl=dead, MaxNumberOfMessages=10, VisibilityTimeout=0)
        bodies = [m["Body"] for m in got.get("Messages", [])]
        time.sleep(1)
    assert marker in bodies, stack.output()

    log = stack.state_dir / "stack.log"
    deadline = time.time() + 120  # the schedule runs every 30 s
    while time.time() < deadline:
        text = log.read_text(errors="replace")
        if "messages in dead-letter queues" in text and "kiln-build-events-dlq: " in text:
            break
        time.sleep(2)
    else:
        raise AssertionError(
            "the cleanup schedule never reported the dead letter\n" + stack.output()
        )
