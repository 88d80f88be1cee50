"""Interoperable image import: PUT /stage then ``glance-direct``, or ``web-download`` (Kiln
fetches the URL itself). The request moves the image to ``importing`` and queues the work; the
import worker (on_glance_import) finishes it: active, or back to queued with the reason kept
on the image. A redelivered message finds the task done, or not its own, and does nothing."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any, BinaryIO

from chalicelib import observability
from chalicelib.adapters import records, web_fetch
from chalicelib.adapters.artifacts import ArtifactStore, glance_data_key, glance_staging_key
from chalicelib.adapters.glance_models import GlanceImageModel
from chalicelib.adapters.work_queue import WorkQueue
from chalicelib.auth import Principal
from chalicelib.config import Settings
from chalicelib.domain.glance import access
from chalicelib.domain.glance.access import owned, visible
from chalicelib.domain.glance.data import Digest, Incoming, activate, receive
from chalicelib.domain.glance.images import move
from chalicelib.domain.uploads.hashing import hash_all, hashed
from chalicelib.domain.uploads.rejection import TooLarge
from chalicelib.errors import BadRequest, Conflict, Gone

METHODS = ("glance-direct", "web-download")
#: how the image shows where an import stands (Glance's names; the error is Kiln's)
IMPORTING, FAILED, ERROR = (
    "os_glance_importing_to_stores",
    "os_glance_failed_import",
    "kiln_import_error",
)
STORE = "s3"


def stage(
    image_id: str,
    principal: Principal,
    stream: BinaryIO,
    length: int | None,
    store: ArtifactStore,
    settings: Settings,
) -> GlanceImageModel:
    owned(image_id, principal, "stage data for")
    key = glance_staging_key(image_id)
    incoming = Incoming(stream, length, store, settings.glance_image_size_cap)

    def finish(image: GlanceImageModel, digest: Digest) -> None:
        if image.status != "uploading":
            raise Conflict(f"Image {image_id} changed to {image.status} while staging.")
        image.staged = {"key": key, **digest.fields()}
        image.size = digest.size

    return receive(image_id, ("queued", "uploading"), incoming, key, finish)


def begin(
    image_id: str, body: Any, principal: Principal, queue: WorkQueue, settings: Settings
) -> None:
    """POST /v2/images/{id}/import: check, move to importing, queue the work (202). Glance's
    order: the body (400), the image (404), its status and formats (409), who asks (403), then
    the web-download URI's filtering (400)."""
    method = body.get("method") if isinstance(body, dict) else None
    name = method.get("name") if isinstance(method, dict) else None
    if name not in METHODS:
        raise BadRequest(f"Import method {name!r} is not supported; use one of {list(METHODS)}.")
    assert isinstance(method, dict)
    uri = method.get("uri")
    _ready(visible(image_id, principal), name)
    owned(image_id, principal, "import data to")
    if name == "web-download":
        if not isinstance(uri, str) or not uri:
            raise BadRequest("The 'web-download' method needs a 'uri'.")
        try:
            web_fetch.check_url(uri, web_fetch.AllowList.parse(settings.glance_import_allow))
        except web_fetch.FetchRefused as exc:
            raise BadRequest(f"URI for web-download does not pass filtering: {exc}") from exc
    task = {"id": str(uuid.uuid4()), "method": name, "uri": uri, "started": time.time()}

    def change(image: GlanceImageModel) -> None:
        _ready(image, name)
        move(image, "importing")
        image.import_task = task
        image.properties = {**_without_import(image.properties), IMPORTING: STORE, FAILED: ""}

    access.change(image_id, change)
    queue.send({"image_id": image_id, "task": task["id"]})


def _ready(image: GlanceImageModel, name: str) -> None:
    """Whether ``name`` may import into the image now (409 as Glance when not)."""
    if image.status == "active":
        raise Conflict("Image with status active cannot be target for import")
    if name == "web-download" and image.status != "queued":
        raise Conflict(f"Image needs to be in 'queued' state to use '{name}' method")
    if name == "glance-direct" and (image.status != "uploading" or not image.staged):
        raise Conflict("Image needs to be staged before 'glance-direct' method can be used")
    for field in ("container_format", "disk_format"):
        if not getattr(image, field):
            raise Conflict(f"'{field}' needs to be set before import")


def _without_import(properties: dict[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (properties or {}).items() if k not in (IMPORTING, FAILED, ERROR)}


def run(message: dict[str, Any], store: ArtifactStore, settings: Settings) -> str:
    """The import worker: one queued import. Returns what happened."""
    image = records.find(GlanceImageModel, str(message.get("image_id")))
    task = image.import_task if image else None
    if image is None or image.status != "importing" or not task:
        return "ignored: no import under way"
    if task.get("id") != message.get("task"):
        return "ignored: another import's message"
    key = glance_data_key(image.id)
    try:
        digest, owned_data = _fetch(image, task, key, store, settings)
    except Exception as exc:  # the image goes back to queued and says why
        observability.logger().warning("import failed", extra={"image": image.id, "why": str(exc)})
        with contextlib.suppress(Gone):  # deleted meanwhile: nothing to go back to
            fail_import(image.id, task["id"], str(exc))
        if image.staged:  # the staged data goes with the failed import (nothing points at it)
            store.delete(image.staged["key"])
        return "failed"

    def done(fresh: GlanceImageModel) -> None:
        if fresh.status != "importing" or (fresh.import_task or {}).get("id") != task["id"]:
            return
        activate(fresh, task.get("key") or key, digest, owned_data)
        fresh.properties = {**_without_import(fresh.properties), IMPORTING: "", FAILED: ""}
        fresh.staged = None
        fresh.import_task = None

    try:
        access.change(image.id, done)
    except Gone:  # deleted during the import: what was fetched or copied belongs to nobody
        if owned_data:
            store.delete(key)
        return "ignored: image deleted during the import"
    if task["method"] == "glance-direct" and image.staged:
        store.delete(image.staged["key"])
    return "active"


def _fetch(
    image: GlanceImageModel,
    task: dict[str, Any],
    key: str,
    store: ArtifactStore,
    settings: Settings,
) -> tuple[Digest, bool]:
    digest = Digest()
    if task["method"] == "glance-direct":
        staged = image.staged or {}
        store.copy(staged["key"], key)
        digest.size = int(staged["size"])
        return _StagedDigest(staged), True
    if task["method"] == "build-output":  # an IMS or compose artifact: hashed where it lies
        hash_all(store.stream(task["key"]), digest)
        return digest, False
    allow = web_fetch.AllowList.parse(settings.glance_import_allow)
    with web_fetch.open_url(str(task["uri"]), allow) as download:
        store.put_stream(key, _capped(download.chunks(), digest, settings.glance_image_size_cap))
    return digest, True


def _capped(chunks: Iterator[bytes], digest: Digest, cap: int) -> Iterator[bytes]:
    """The download, hashed on its way (the shared upload checks), refused past ``cap``."""
    try:
        yield from hashed(chunks, digest, cap)
    except TooLarge:
        raise BadRequest(f"The download exceeds the image size limit of {cap} bytes.") from None


class _StagedDigest(Digest):
    """The digest computed while staging, carried to the imported image."""

    def __init__(self, staged: dict[str, Any]) -> None:
        super().__init__(size=int(staged["size"]))
        self._staged = staged

    def fields(self) -> dict[str, object]:
        return {k: self._staged[k] for k in ("size", "checksum", "os_hash_algo", "os_hash_value")}


def fail_import(image_id: str, task_id: str, reason: str) -> None:
    def change(image: GlanceImageModel) -> None:
        if image.status != "importing" or (image.import_task or {}).get("id") != task_id:
            return
        move(image, "queued")
        image.import_task = None
        image.staged = None
        image.size = None
        image.properties = {
            **_without_import(image.properties),
            IMPORTING: "",
            FAILED: STORE,
            ERROR: reason[:255],
        }

    access.change(image_id, change)
