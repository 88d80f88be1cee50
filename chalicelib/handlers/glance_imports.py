"""The Glance import queue -> here: each message is one import (or build output) to finish."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from chalicelib import observability
from chalicelib.container import Container
from chalicelib.domain.glance import imports


def handle(bodies: Iterable[str], box: Container) -> list[dict[str, Any]]:
    log = observability.logger()
    outcomes = []
    for body in bodies:
        try:
            message = json.loads(body)
        except ValueError:
            log.warning("import message is not JSON; dropped", extra={"body": body[:200]})
            continue
        if not isinstance(message, dict):
            continue
        outcome = imports.run(message, box.artifacts, box.settings)
        log.info("import", extra={"image": message.get("image_id"), "outcome": outcome})
        outcomes.append({"image_id": message.get("image_id"), "outcome": outcome})
    return outcomes
