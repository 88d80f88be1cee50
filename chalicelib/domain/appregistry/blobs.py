"""A release's blob: the gzip tar a pusher sends base64-encoded (operator-courier's bundle, a
helm chart). Kiln checks that it is one when it is pushed, and reads its files in memory when
it exports one (never onto a disk): with its size, its uncompressed size and its member count
bounded, and no member named outside the archive (absolute, ``..``)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import gzip
import io
import posixpath
import tarfile
import zlib
from collections.abc import Iterator

from chalicelib.config import Settings
from chalicelib.domain.appregistry.errors import InvalidUsage

GZIP_MAGIC = b"\x1f\x8b"
#: what a tar adds to each member (header and padding), beside its data
MEMBER_OVERHEAD = 1536


class BadBlob(ValueError):
    """The blob is not a gzip tar Kiln reads; the message says why."""


@dataclasses.dataclass(frozen=True)
class BlobLimits:
    max_blob_bytes: int  # the tar.gz
    max_tar_bytes: int  # the tar inside it
    max_members: int

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobLimits:
        """As large as the tar operator-courier makes of the biggest upload OMPS accepts
        (its files and directories, as many directories as files at most)."""
        members = 2 * settings.omps_max_entries + 16
        files = settings.omps_max_uncompressed_bytes
        return cls(
            max_blob_bytes=files,
            max_tar_bytes=files + MEMBER_OVERHEAD * members,
            max_members=members,
        )


def decode(text: object, limits: BlobLimits) -> bytes:
    """The blob of a push body (base64 of a gzip tar); InvalidUsage if it is not one."""
    if not isinstance(text, str):
        raise InvalidUsage("Invalid blob: it must be a base64 string")
    compact = "".join(text.split())
    if len(compact) > (limits.max_blob_bytes + 2) // 3 * 4:
        raise InvalidUsage(f"Invalid blob: larger than {limits.max_blob_bytes} bytes")
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidUsage("Invalid blob: it is not base64") from None
    try:
        for _name, _content in files(data, limits):
            pass
    except BadBlob as exc:
        raise InvalidUsage(f"Invalid blob: {exc}") from None
    return data


def files(data: bytes, limits: BlobLimits) -> Iterator[tuple[str, bytes]]:
    """Each regular file of the gzip tar: its normalised relative path and its bytes, in
    archive order (directories, links and devices skipped). BadBlob when the data is not a
    gzip tar, is too large, or names a member outside the archive."""
    if len(data) > limits.max_blob_bytes:
        raise BadBlob(f"larger than {limits.max_blob_bytes} bytes")
    if not data.startswith(GZIP_MAGIC):
        raise BadBlob("it is not gzip data")
    stream = _Bounded(gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb"), limits.max_tar_bytes)
    count = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                count += 1
                if count > limits.max_members:
                    raise BadBlob(f"more than {limits.max_members} members")
                name = member_path(member.name)
                if not member.isfile():
                    continue
                reader = archive.extractfile(member)
                yield name, reader.read() if reader else b""
        while stream.read(1 << 16):  # the rest, so gzip checks its CRC and length
            pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BadBlob(f"it is not a gzip tar ({exc})") from None
    if count == 0:
        raise BadBlob("the archive is empty")


def member_path(name: str) -> str:
    """A member's name as a relative path; BadBlob for one outside the archive."""
    if "\x00" in name or "\\" in name:
        raise BadBlob(f"member {name!r} has a forbidden character")
    if name.startswith("/"):
        raise BadBlob(f"member {name!r} is absolute")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise BadBlob(f"member {name!r} points outside the archive")
    return posixpath.join(*parts) if parts else "."


class _Bounded(io.RawIOBase):
    """A read-only stream that fails once more than ``limit`` bytes were read from it."""

    def __init__(self, inner: gzip.GzipFile, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        chunk = self.inner.read(len(buffer))
        self.count += len(chunk)
        if self.count > self.limit:
            raise BadBlob(f"the tar is larger than {self.limit} bytes")
        buffer[: len(chunk)] = chunk
        return len(chunk)
