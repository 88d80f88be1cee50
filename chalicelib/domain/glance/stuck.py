"""The schedule's Glance pass: data that never arrived. An upload whose process died, a direct
upload never completed, an import no worker finished: each image goes back to ``queued`` (an
import also says why), so its owner can upload again. Images staged and waiting for their
import are left alone. Read from the sparse ``by_in_flight`` index."""

from __future__ import annotations

import contextlib
import time

from chalicelib.adapters.artifacts import ArtifactStore
from chalicelib.adapters.glance_models import IN_FLIGHT, GlanceImageModel
from chalicelib.config import Settings
from chalicelib.domain.glance import access
from chalicelib.domain.glance.access import parse_time
from chalicelib.domain.glance.images import move
from chalicelib.domain.glance.imports import fail_import
from chalicelib.errors import Gone


def _limit(image: GlanceImageModel, settings: Settings) -> float | None:
    """How long the image may stay as it is; None: as long as it likes."""
    if image.status == "uploading" and image.staged:
        return None
    if image.status == "saving" and image.direct_upload:
        return settings.presign_seconds + settings.interrupted_grace_seconds
    if image.status == "importing":
        return settings.glance_import_timeout_seconds
    return settings.glance_upload_timeout_seconds


def recover(store: ArtifactStore, settings: Settings, now: float | None = None) -> list[str]:
    now = time.time() if now is None else now
    done = []
    for image in GlanceImageModel.by_in_flight.query(IN_FLIGHT):
        limit = _limit(image, settings)
        since = parse_time(image.updated).timestamp()
        if limit is None or now - since < limit:
            continue
        if image.status == "importing":
            task = image.import_task or {}
            fail_import(image.id, str(task.get("id")), f"the import did not finish in {limit} s")
            done.append(f"{image.id}: import abandoned")
            continue
        upload = image.direct_upload
        if upload:
            store.abort_upload(upload["key"], upload["upload_id"])
        _requeue(image.id, image.status)
        done.append(f"{image.id}: {image.status} abandoned, queued again")
    return done


def _requeue(image_id: str, status: str) -> None:
    def change(image: GlanceImageModel) -> None:
        if image.status == status:
            move(image, "queued")
            image.direct_upload = None

    with contextlib.suppress(Gone):
        access.change(image_id, change)
