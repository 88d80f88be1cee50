"""The build-events queue's handler: a batch of messages, each handled by
chalicelib/domain/builds/events.py."""

from __future__ import annotations

import json
from collections.abc import Iterable

from chalicelib import observability
from chalicelib.container import Container
from chalicelib.domain.builds import events


def handle(bodies: Iterable[str], box: Container) -> list[str]:
    """Handle a batch. A malformed message is logged and dropped (redelivering it cannot help);
    any other failure raises, so the batch comes back and is tried again."""
    outcomes = []
    for body in bodies:
        try:
            message = json.loads(body)
            outcomes.append(events.handle_one(message, box))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            observability.logger().error(
                "malformed build event dropped", extra={"body": body[:2000], "problem": repr(exc)}
            )
    return outcomes
