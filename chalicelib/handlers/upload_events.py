"""Bucket -> SQS -> here: an uploaded recipe archive is checked, checksummed and made usable;
Glance data uploaded straight to S3 is hashed and its image activated. Answered as a Lambda
partial batch response: a message that fails comes back, then goes to the dead-letter queue."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from typing import Any

from chalicelib import observability, safe_json
from chalicelib.container import Container
from chalicelib.domain.glance import direct
from chalicelib.domain.ims import recipes
from chalicelib.handlers.batches import BatchResponse, answer


def object_created(body: str) -> Iterable[tuple[str, str, str, str]]:
    """(bucket, key, etag, sequencer) for each ObjectCreated record in an S3 notification; a
    body that is not a JSON object raises (safe_json.MalformedJSON, TypeError)."""
    message = safe_json.loads(body)
    if not isinstance(message, dict):
        raise TypeError(f"an S3 notification is a JSON object, not {type(message).__name__}")
    found = []
    for record in message.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record.get("s3", {})
        key = urllib.parse.unquote_plus(s3.get("object", {}).get("key", ""))
        etag = str(s3.get("object", {}).get("eTag", "")).strip('"')
        sequencer = str(s3.get("object", {}).get("sequencer") or "")
        found.append((s3.get("bucket", {}).get("name", ""), key, etag, sequencer))
    return found


def handle(messages: Iterable[tuple[str, str]], box: Container) -> BatchResponse:
    """Each (message id, body) on its own (chalicelib/handlers/batches.py)."""
    return answer(messages, lambda body: _handle_one(body, box), "upload event")


def _handle_one(body: str, box: Container) -> list[dict[str, Any]]:
    log = observability.logger()
    outcomes = []
    for bucket, key, etag, sequencer in object_created(body):
        if bucket != box.artifacts.bucket:
            log.warning("upload event for a foreign bucket ignored", extra={"bucket": bucket})
            continue
        if direct.image_of(key):
            outcome = direct.arrived(key, box.artifacts, etag, box.settings.glance_image_size_cap)
            log.info("direct upload", extra={"key": key, "outcome": outcome})
            outcomes.append({"key": key, "image_id": direct.image_of(key), "outcome": outcome})
            continue
        recipe_id, outcome = recipes.archive_uploaded(
            key, etag, box.artifacts, box.settings, sequencer
        )
        log.info("upload checked", extra={"key": key, "recipe_id": recipe_id, "outcome": outcome})
        outcomes.append({"key": key, "recipe_id": recipe_id, "outcome": outcome})
    return outcomes
