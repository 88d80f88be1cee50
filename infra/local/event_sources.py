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
from chalice.app import CloudWatchEventConfig, SQSEventConfig

log = logging.getLogger("kiln.local")
Handler = Callable[[dict[str, Any], Any], Any]


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
    """Long-polls one queue and hands each batch to its handler; deletes it when that returns."""

    def __init__(
        self,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        batch_size: int,
        stop: threading.Event,
        region: str,
    ) -> None:
        super().__init__(name=f"poll-{queue_url.rsplit('/', 1)[-1]}", daemon=True)
        self._url, self._arn, self._handler = queue_url, queue_arn, handler
        self._batch, self._stop, self._region = batch_size, stop, region
        self._sqs = boto3.client("sqs", region_name=region)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once(wait_seconds=1)
            except Exception:  # keep polling, as Lambda's event source mapping would
                log.exception("handler for %s failed; the batch will be redelivered", self._url)
                time.sleep(1)

    def poll_once(self, wait_seconds: int = 0) -> int:
        messages = self._sqs.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=min(self._batch, 10),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [self._record(m) for m in messages]}
        self._handler(event, lambda_context(self.name))
        self._sqs.delete_message_batch(
            QueueUrl=self._url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
        return len(messages)

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


class Schedule(threading.Thread):
    """Fires a scheduled handler every ``interval`` seconds (short, locally)."""

    def __init__(self, handler: Handler, interval: float, stop: threading.Event) -> None:
        super().__init__(name="schedule", daemon=True)
        self._handler, self._interval, self._stop = handler, interval, stop

    def run(self) -> None:
        while not self._stop.wait(self._interval):
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
) -> list[threading.Thread]:
    """One poller per on_sqs_message handler, one timer per schedule handler."""
    sqs = boto3.client("sqs", region_name=region)
    threads: list[threading.Thread] = []
    for source in app_module.app.event_sources:
        handler = _handler(app_module, source.handler_string)
        if isinstance(source, SQSEventConfig):
            url = queue_urls[source.queue]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            threads.append(
                SqsPoller(
                    url, arn["Attributes"]["QueueArn"], handler, source.batch_size, stop, region
                )
            )
        elif isinstance(source, CloudWatchEventConfig):
            threads.append(Schedule(handler, schedule_seconds, stop))
    for thread in threads:
        thread.start()
    return threads
