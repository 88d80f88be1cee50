"""What a request produced, as its readers get it: the bundle archive (with the ``Digest`` of
the sha256 recorded when the request completed) and the request's log.

The bundle is served only while the request is ``complete`` (a stale one's is gone: 400, as
upstream). The object in S3 must still be the one recorded — same ETag, same size — or the
answer is upstream's 500 ``Checksum of bundle archive <id>.tar.gz has changed.``; the read
itself is checked against the recorded ETag too, so a swap between the two is caught. The
response is never a redirect: atomic-reactor checks the ``Digest`` of the last response."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator

from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore, ObjectMissing
from chalicelib.adapters.cachito_models import CachitoRequestModel
from chalicelib.adapters.models import JobModel
from chalicelib.domain.builds import logs
from chalicelib.errors import BadRequest, DomainError, Gone, NotFound

NOT_COMPLETE = 'The request must be in the "complete" state before downloading the archive'


@dataclasses.dataclass
class Bundle:
    headers: dict[str, str]
    chunks: Iterator[bytes]
    size: int


def digest_header(sha256_hex: str) -> str:
    """``sha-256=<standard base64 of the raw digest>``, as the client compares it whole."""
    return "sha-256=" + base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")


def _etag(value: object) -> str:
    return str(value or "").strip('"')


def open_bundle(request: CachitoRequestModel, store: ArtifactStore) -> Bundle:
    """The bundle's bytes and headers; BadRequest unless complete, a 500 DomainError if the
    archive is missing or not the one recorded."""
    if request.state != "complete":
        raise BadRequest(NOT_COMPLETE)
    changed = DomainError(f"Checksum of bundle archive {request.id}.tar.gz has changed.")
    if not (request.bundle_key and request.bundle_sha256):
        raise changed
    head = store.head(request.bundle_key)
    if head is None or not _matches(request, _etag(head.get("ETag")), head.get("ContentLength")):
        raise changed
    try:
        etag, chunks = store.open(request.bundle_key)
    except ObjectMissing:
        raise changed from None
    if not _matches(request, _etag(etag), head.get("ContentLength")):
        raise changed
    size = int(head["ContentLength"])
    headers = {
        "Content-Type": "application/gzip",
        "Content-Disposition": f"attachment; filename=cachito-{request.id}.tar.gz",
        "Content-Length": str(size),
        "Digest": digest_header(request.bundle_sha256),
    }
    return Bundle(headers, chunks, size)


def _matches(request: CachitoRequestModel, etag: str, size: object) -> bool:
    if request.bundle_etag and etag != _etag(request.bundle_etag):
        return False
    return request.bundle_size is None or int(str(size)) == int(request.bundle_size)


def log_text(request: CachitoRequestModel, store: ArtifactStore) -> str:
    """The request's log (while it runs, what its host has written so far). Without one: a
    stale request's is gone (410), an ended one's not found, a running one's empty."""
    text = _log(request, store)
    if text is not None:
        return text
    if request.state == "stale":
        raise Gone(f"The logs for the Cachito request {request.id} no longer exist")
    if request.state in ("complete", "failed"):
        raise NotFound(f"request {request.id} has no log")
    return ""


def _log(request: CachitoRequestModel, store: ArtifactStore) -> str | None:
    job = records.find(JobModel, request.job_id) if request.job_id else None
    if job is not None:
        part = logs.read(job, store)
        return part.text if part.size else None
    if request.log_key and store.head(request.log_key) is not None:
        return store.read(request.log_key).decode("utf-8", errors="replace")
    return None
