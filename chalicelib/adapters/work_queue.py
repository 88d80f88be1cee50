"""SQS: a queue of background work a handler consumes (on_sqs_message). Its URL is looked up
by name on first use."""

from __future__ import annotations

import json
from typing import Any


class WorkQueue:
    def __init__(self, sqs: Any, name: str) -> None:
        self._sqs = sqs
        self.name = name
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = str(self._sqs.get_queue_url(QueueName=self.name)["QueueUrl"])
        return self._url

    def send(self, body: dict[str, Any]) -> None:
        self._sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(body))
