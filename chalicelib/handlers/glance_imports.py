"""The Glance import queue -> here: each message is one import (or build output) to finish.
Answered as a Lambda partial batch response: a message that fails comes back, then goes to the
dead-letter queue."""

from __future__ import annotations

import json
from collections.abc import Iterable

from chalicelib import observability
from chalicelib.container import Container
from chalicelib.domain.glance import imports
from chalicelib.handlers.batches import BatchResponse, answer


def handle(messages: Iterable[tuple[str, str]], box: Container) -> BatchResponse:
    """A message that raises (a body that is not a JSON object, or any error in the import)
    comes back, then goes to the dead-letter queue; the others are acknowledged."""

    def one(body: str) -> None:
        message = json.loads(body)
        if not isinstance(message, dict):
            raise TypeError(f"an import message is a JSON object, not {type(message).__name__}")
        outcome = imports.run(message, box.artifacts, box.settings)
        observability.logger().info(
            "import", extra={"image": message.get("image_id"), "outcome": outcome}
        )

    return answer(messages, one, "import message")
