"""The build-events queue's handler: a batch of messages, each handled on its own by
chalicelib/domain/builds/events.py, answered as a Lambda partial batch response."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from chalicelib import observability
from chalicelib.container import Container
from chalicelib.domain.builds import events

#: {"batchItemFailures": [{"itemIdentifier": <messageId>}]}: the messages SQS is to deliver again
BatchResponse = dict[str, list[dict[str, str]]]


def handle(messages: Iterable[tuple[str, str]], box: Container) -> BatchResponse:
    """Handle a batch of (message id, body). A message that raises anything (a body that is not
    a JSON object, a record that cannot be written, a bug) is logged with its job id and reported
    as failed: SQS delivers it again and, after maxReceiveCount receives, moves it to the
    dead-letter queue, which the cleanup schedule reports. The others are acknowledged."""
    log = observability.logger()
    failures: list[dict[str, str]] = []
    for message_id, body in messages:
        log.set_correlation_id(None)  # never the previous message's job
        message: Any = None
        try:
            message = json.loads(body)
            observability.correlate(job_id_of(message))
            events.handle_one(message, box)  # raises for anything but a build event
        except Exception as exc:
            log.exception(
                "build event failed; it will be retried, then dead-lettered",
                extra={
                    "message_id": message_id,
                    "job_id": job_id_of(message),
                    "event_type": message.get("type") if isinstance(message, dict) else None,
                    "body": body[:2000],
                    "problem": repr(exc),
                },
            )
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def job_id_of(message: Any) -> str | None:
    """The job a build event is about, when it names one (a node heartbeat does not)."""
    job_id = message.get("job_id") if isinstance(message, dict) else None
    return job_id if isinstance(job_id, str) and job_id else None
