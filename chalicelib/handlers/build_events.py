"""The build-events queue's handler: a batch of messages (chalicelib/handlers/batches.py),
each handled on its own by chalicelib/domain/builds/events.py."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from chalicelib import observability
from chalicelib.container import Container
from chalicelib.domain.builds import events
from chalicelib.handlers.batches import BatchResponse, answer


def handle(messages: Iterable[tuple[str, str]], box: Container) -> BatchResponse:
    """A message that raises anything (a body that is not a JSON object, not one of the
    protocol's events, a record that cannot be written, a bug) is logged with its job id and
    comes back, then goes to the dead-letter queue; the others are acknowledged."""

    def one(body: str) -> None:
        message = json.loads(body)
        observability.correlate(job_id_of(message))
        events.handle_one(message, box)

    return answer(messages, one, "build event", _about)


def _about(body: str) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except ValueError:
        message = None
    kind = message.get("type") if isinstance(message, dict) else None
    return {"job_id": job_id_of(message), "event_type": kind}


def job_id_of(message: Any) -> str | None:
    """The job a build event is about, when it names one (a node heartbeat does not)."""
    job_id = message.get("job_id") if isinstance(message, dict) else None
    return job_id if isinstance(job_id, str) and job_id else None
