"""The Glance import queue -> here: each message is one import (or build output) to finish.
Answered as a Lambda partial batch response: a message that fails comes back, then goes to the
dead-letter queue."""

from __future__ import annotations

import json
from collections.abc import Iterable

from chalicelib import observability
from chalicelib.container import Container
from chalicelib.domain.glance import imports


def handle(messages: Iterable[tuple[str, str]], box: Container) -> dict[str, list[dict[str, str]]]:
    """Handle a batch of (message id, body), each on its own. One that raises (a body that is not
    a JSON object, or any error in the import) is logged and reported in batchItemFailures."""
    log = observability.logger()
    failures: list[dict[str, str]] = []
    for message_id, body in messages:
        try:
            message = json.loads(body)
            if not isinstance(message, dict):
                raise TypeError(f"an import message is a JSON object, not {type(message).__name__}")
            outcome = imports.run(message, box.artifacts, box.settings)
            log.info("import", extra={"image": message.get("image_id"), "outcome": outcome})
        except Exception as exc:
            log.exception(
                "import message failed; it will be retried, then dead-lettered",
                extra={"message_id": message_id, "body": body[:2000], "problem": repr(exc)},
            )
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}
