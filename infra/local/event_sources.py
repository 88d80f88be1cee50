"""Drives the handlers `chalice local` ignores: SQS pollers and schedules, as Lambda would."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from types import ModuleType, SimpleNamespace
from typing import Any

import boto3
from chalice.app import ScheduledEventConfig, SQSEventConfig

log = logging.getLogger("kiln.local")
Handler = Callable[[dict[str, Any], Any], Any]
#: Locally, a failed message comes back after this many seconds, not after its queue's visibility
#: timeout (minutes on AWS), so a poisoned message reaches its dead-letter queue in seconds.
RETRY_SECONDS = 2


def lambda_context(name: str) -> SimpleNamespace:
    return SimpleNamespace(
        function_name=name,
        function_version="$LATEST",
        invoked_function_arn=f"arn:aws:lambda:local:123456789012:function:{name}",
        memory_limit_in_mb=512,
        aws_request_id=str(uuid.uuid4()),
        get_remaining_time_in_millis=lambda: 300_000,
    )


def _handler(app_module: ModuleType, handler_string: str) -> Handler:
    return getattr(app_module, handler_string.rsplit(".", 1)[1])  # type: ignore[no-any-return]


class SqsPoller(threading.Thread):
    """Long-polls one queue and hands each batch to its handler, as Lambda's event source mapping
    with ReportBatchItemFailures does: when the handler returns, every message but those its
    ``{"batchItemFailures": [{"itemIdentifier": <messageId>}]}`` names is deleted; when it raises,
    none is. A message not deleted comes back after ``retry_seconds`` (its visibility timeout),
    and SQS moves it to the queue's dead-letter queue after maxReceiveCount receives."""

    def __init__(
        self,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        batch_size: int,
        stop: threading.Event,
        region: str,
        retry_seconds: int = RETRY_SECONDS,
    ) -> None:
        super().__init__(name=f"poll-{queue_url.rsplit('/', 1)[-1]}", daemon=True)
        self._url, self._arn, self._handler = queue_url, queue_arn, handler
        # not ``_stop``: threading.Thread has a method of that name, which join() calls
        self._batch, self._halt, self._region = batch_size, stop, region
        self._retry_seconds = retry_seconds
        self._sqs = boto3.client("sqs", region_name=region)

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.poll_once(wait_seconds=1)
            except Exception:  # keep polling, as Lambda's event source mapping would
                log.exception("handler for %s failed; the batch will be redelivered", self._url)
                time.sleep(1)

    def poll_once(self, wait_seconds: int = 0) -> int:
        """One receive and one handler call; the number of messages received."""
        messages = self._sqs.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=min(self._batch, 10),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [self._record(m) for m in messages]}
        try:
            response = self._handler(event, lambda_context(self.name))
        except Exception:
            self._retry(messages)
            raise
        failed = failed_message_ids(response, [m["MessageId"] for m in messages])
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
        if failed:
            log.warning(
                "%d of %d message(s) on %s failed; they come back in %d s",
                len(failed),
                len(messages),
                self._url,
                self._retry_seconds,
            )
            self._retry([m for m in messages if m["MessageId"] in failed])
        return len(messages)

    def _retry(self, messages: list[dict[str, Any]]) -> None:
        """The messages come back after retry_seconds rather than the queue's visibility timeout."""
        self._sqs.change_message_visibility_batch(
            QueueUrl=self._url,
            Entries=[
                {
                    "Id": str(i),
                    "ReceiptHandle": m["ReceiptHandle"],
                    "VisibilityTimeout": self._retry_seconds,
                }
                for i, m in enumerate(messages)
            ],
        )

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self._arn,
            "awsRegion": self._region,
        }


def failed_message_ids(response: Any, message_ids: list[str]) -> set[str]:
    """The messages a handler's answer reports as failed, read as Lambda reads a partial batch
    response: no answer, an empty one or an empty/null batchItemFailures list is a complete
    success; an answer Lambda cannot read, or an item whose itemIdentifier is empty, missing or
    not a message of the batch, fails the whole batch."""
    if response is None:
        return set()
    if not isinstance(response, dict):
        log.error("handler answer %r is not a partial batch response: the batch failed", response)
        return set(message_ids)
    items = response.get("batchItemFailures")
    if not items:
        return set()
    failed: set[str] = set()
    for item in items if isinstance(items, list) else [items]:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            log.error("batch item failure %r names no message of the batch: all failed", item)
            return set(message_ids)
        failed.add(identifier)
    return failed


class Schedule(threading.Thread):
    """Fires a scheduled handler every ``interval`` seconds (short, locally)."""

    def __init__(self, handler: Handler, interval: float, stop: threading.Event) -> None:
        super().__init__(name="schedule", daemon=True)
        self._handler, self._interval, self._halt = handler, interval, stop

    def run(self) -> None:
        while not self._halt.wait(self._interval):
            event = {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "resources": [],
                "region": "local",
                "account": "123456789012",
                "detail": {},
            }
            try:
                self._handler(event, lambda_context("schedule"))
            except Exception:
                log.exception("scheduled handler failed")


def start(
    app_module: ModuleType,
    queue_urls: dict[str, str],
    region: str,
    schedule_seconds: float,
    stop: threading.Event,
    retry_seconds: int = RETRY_SECONDS,
) -> list[threading.Thread]:
    """One poller per on_sqs_message handler, one timer per schedule handler."""
    sqs = boto3.client("sqs", region_name=region)
    threads: list[threading.Thread] = []
    for source in app_module.app.event_sources:
        handler = _handler(app_module, source.handler_string)
        if isinstance(source, SQSEventConfig):
            url = queue_urls[str(source.queue)]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            threads.append(
                SqsPoller(
                    url,
                    arn["Attributes"]["QueueArn"],
                    handler,
                    source.batch_size,
                    stop,
                    region,
                    retry_seconds,
                )
            )
        elif isinstance(source, ScheduledEventConfig):  # @app.schedule
            threads.append(Schedule(handler, schedule_seconds, stop))
    for thread in threads:
        thread.start()
    return threads
