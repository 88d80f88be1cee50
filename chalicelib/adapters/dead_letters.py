"""SQS dead-letter queues (``<queue>-dlq``): how many messages each holds, and a look at a few
of them, never deleting or hiding one (a peek receives with VisibilityTimeout 0)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    message_id: str
    job_id: str | None
    kind: str  # the event's type ("result", "progress"...), "build job", "not JSON"...
    subject: str  # "job <id>", "image <id>", "object <key>" or "message <message id>"


@dataclasses.dataclass(frozen=True)
class DeadLetterQueue:
    name: str
    count: int  # approximate, as SQS counts: visible and in flight
    peeked: tuple[DeadLetter, ...]


class DeadLetters:
    def __init__(self, sqs: Any, names: Sequence[str], peek: int = 3) -> None:
        self._sqs = sqs
        self.names = tuple(names)
        self._peek = max(1, min(peek, 10))
        self._urls: dict[str, str] = {}

    def _url(self, name: str) -> str:
        if name not in self._urls:
            self._urls[name] = str(self._sqs.get_queue_url(QueueName=name)["QueueUrl"])
        return self._urls[name]

    def look(self, name: str) -> DeadLetterQueue:
        """The queue's approximate count and, when it holds any, a few of its messages."""
        url = self._url(name)
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        count = int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
        )
        if not count:
            return DeadLetterQueue(name, 0, ())
        messages = self._sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=self._peek, VisibilityTimeout=0, WaitTimeSeconds=0
        ).get("Messages", [])
        return DeadLetterQueue(name, count, tuple(describe(m) for m in messages))


def describe(message: dict[str, Any]) -> DeadLetter:
    """What a dead letter was about, read from any of Kiln's queues' message bodies."""
    message_id = str(message.get("MessageId", ""))
    try:
        body = json.loads(message.get("Body", ""))
    except ValueError:
        return DeadLetter(message_id, None, "not JSON", f"message {message_id}")
    if not isinstance(body, dict):
        return DeadLetter(message_id, None, "not a JSON object", f"message {message_id}")
    job = body.get("job")
    if isinstance(job, dict) and "token" in body:  # a build queue's job, with its task token
        return _about_job(message_id, job.get("job_id"), "build job")
    if isinstance(body.get("Records"), list):  # an S3 notification
        key = _dig(body["Records"][:1], 0, "s3", "object", "key")
        subject = f"object {key}" if key else f"message {message_id}"
        return DeadLetter(message_id, None, "S3 notification", subject)
    if body.get("image_id") and not body.get("type"):  # a Glance import
        return DeadLetter(message_id, None, "import", f"image {body['image_id']}")
    return _about_job(message_id, body.get("job_id"), str(body.get("type") or "no type"))


def _about_job(message_id: str, job_id: Any, kind: str) -> DeadLetter:
    if isinstance(job_id, str) and job_id:
        return DeadLetter(message_id, job_id, kind, f"job {job_id}")
    return DeadLetter(message_id, None, kind, f"message {message_id}")


def _dig(node: Any, *path: Any) -> Any:
    """node[path[0]][path[1]]..., or None where the body is not shaped so."""
    for step in path:
        if isinstance(node, dict) and isinstance(step, str):
            node = node.get(step)
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            return None
    return node
