"""Image data: PUT /file streams into S3 while size, MD5 and SHA-512 are computed (the shared
upload checks, domain/uploads/hashing.py); GET /file streams out, whole or one byte range. A
failed upload leaves the image queued and no data."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable, Iterator
from typing import BinaryIO

from chalicelib.adapters.artifacts import CHUNK, ArtifactStore, glance_data_key
from chalicelib.adapters.glance_models import GlanceImageModel
from chalicelib.auth import Principal
from chalicelib.config import Settings
from chalicelib.domain.glance import access
from chalicelib.domain.glance.access import is_admin, owned, visible
from chalicelib.domain.glance.images import move
from chalicelib.domain.uploads.hashing import StreamHasher, body_chunks, check_declared, hashed
from chalicelib.domain.uploads.rejection import BodyCutShort, TooLarge
from chalicelib.errors import (
    BadRequest,
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    QuotaExceeded,
    RangeNotSatisfiable,
)

#: one range of ASCII digits (``\d`` would take other scripts' digits too)
_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
#: any offset with more digits is past the end of any image (and int() of thousands of
#: digits raises)
_MAX_DIGITS = 19


class Digest(StreamHasher):
    """Size, MD5 and SHA-512 of an image's data as it passes (the shared StreamHasher), and the
    image fields they fill."""

    def __init__(self, size: int = 0) -> None:
        super().__init__(("md5", "sha512"), size)

    def fields(self) -> dict[str, object]:
        self.close()
        return {
            "size": self.size,
            "checksum": self.hexdigest("md5"),
            "os_hash_algo": "sha512",
            "os_hash_value": self.hexdigest("sha512"),
        }


def measured(stream: BinaryIO, length: int | None, digest: Digest, cap: int) -> Iterator[bytes]:
    """The body in chunks, each counted and hashed; refuses more than ``cap`` bytes and a body
    that ends before its Content-Length."""
    try:
        check_declared(length, cap)
        yield from hashed(body_chunks(stream, length, CHUNK), digest, cap)
    except TooLarge as exc:
        if exc.declared:
            raise QuotaExceeded(
                f"Image exceeds the storage limit: {length} > {cap} bytes."
            ) from None
        raise QuotaExceeded(f"Image exceeds the storage limit of {cap} bytes.") from None
    except BodyCutShort as exc:
        raise BadRequest(
            f"The request body ended after {exc.received} of {exc.declared} bytes."
        ) from None


@dataclasses.dataclass(frozen=True)
class Incoming:
    """A request body on its way to S3: ``length`` bytes when declared, at most ``cap``."""

    stream: BinaryIO
    length: int | None
    store: ArtifactStore
    cap: int

    def write(self, key: str, digest: Digest) -> None:
        self.store.put_stream(key, measured(self.stream, self.length, digest, self.cap))


def receive(
    image_id: str,
    into: tuple[str, str],
    incoming: Incoming,
    key: str,
    finish: Callable[[GlanceImageModel, Digest], None],
) -> GlanceImageModel:
    """Move the image from ``into[0]`` to ``into[1]``, stream ``incoming`` to ``key``, then
    ``finish`` the record; any failure moves it back to ``into[0]`` (nothing partial is
    kept)."""
    before, during = into

    def begin(image: GlanceImageModel) -> None:
        if image.status != before:
            raise Conflict(
                f"Image status transition from {image.status} to {during} is not allowed"
            )
        move(image, during)

    access.change(image_id, begin)
    digest = Digest()
    try:
        incoming.write(key, digest)
    except BaseException as exc:
        digest.close()
        _revert(image_id, during, before)
        if isinstance(exc, OSError):
            raise BadRequest(f"The upload of image {image_id} did not complete: {exc}") from exc
        raise
    try:
        return access.change(image_id, lambda image: finish(image, digest))
    except Gone:
        raise
    except DomainError:
        _revert(image_id, during, before)
        raise


def _revert(image_id: str, during: str, before: str) -> None:
    def back(image: GlanceImageModel) -> None:
        if image.status == during:
            move(image, before)

    with contextlib.suppress(Gone):
        access.change(image_id, back)


def upload(
    image_id: str,
    principal: Principal,
    stream: BinaryIO,
    length: int | None,
    store: ArtifactStore,
    settings: Settings,
) -> GlanceImageModel:
    image = owned(image_id, principal, "upload data to")
    if image.disk_format is None or image.container_format is None:
        raise BadRequest(
            "Properties disk_format, container_format must be set prior to saving data."
        )
    key = glance_data_key(image_id)
    incoming = Incoming(stream, length, store, settings.glance_image_size_cap)

    def finish(image: GlanceImageModel, digest: Digest) -> None:
        if image.status != "saving":
            raise Conflict(f"Image {image_id} changed to {image.status} during the upload.")
        activate(image, key, digest)

    try:
        return receive(image_id, ("queued", "saving"), incoming, key, finish)
    except Gone:
        store.delete(key)
        raise


def activate(image: GlanceImageModel, key: str, digest: Digest, owned_data: bool = True) -> None:
    for name, value in digest.fields().items():
        setattr(image, name, value)
    image.data_key = key
    image.data_owned = owned_data
    move(image, "active")


@dataclasses.dataclass
class Download:
    status: int
    headers: dict[str, str]
    chunks: Iterator[bytes]
    size: int
    key: str = ""


def download(
    image_id: str, principal: Principal, range_header: str | None, store: ArtifactStore
) -> Download:
    image = visible(image_id, principal)
    if image.status == "deactivated" and not is_admin(principal):
        raise Forbidden(
            "The requested image has been deactivated. Image data download is forbidden."
        )
    if not image.data_key or image.status not in ("active", "deactivated"):
        return Download(204, {}, iter(()), 0)
    size = int(image.size or 0)
    headers = {"Content-Type": "application/octet-stream"}
    wanted = _range(range_header, size)
    if wanted is None:
        if image.checksum:
            headers["Content-MD5"] = image.checksum
        headers["Content-Length"] = str(size)
        chunks = store.stream_range(image.data_key, 0, size - 1) if size else iter(())
        return Download(200, headers, chunks, size, image.data_key)
    first, last = wanted
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(last - first + 1)
    chunks = store.stream_range(image.data_key, first, last)
    return Download(206, headers, chunks, last - first + 1, image.data_key)


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if not match or not (match.group(1) or match.group(2)):
        raise RangeNotSatisfiable(f"Invalid Range header: {header}")
    start, end = match.group(1), match.group(2)
    if not start:  # the last N bytes
        first, last = max(size - _offset(end), 0), size - 1
    else:
        first, last = _offset(start), min(_offset(end), size - 1) if end else size - 1
    if first >= size or first > last:
        raise RangeNotSatisfiable(f"Requested range {header} not available for size {size}.")
    return first, last


def _offset(digits: str) -> int:
    """A byte offset of a Range header; one too long to be an offset is past every end."""
    return int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS
