"""Object bodies as files for the local stack's S3 (infra/local/s3_files.py): a body is a
``Body``, a list of extents (blob file, offset, length) under ``<data dir>/s3/blobs/``, so a
multipart upload is completed and an object copied by joining or cutting extents, never by
copying bytes, and a download is sent from the file (``socket.sendfile``), never read into
memory. Blob files are written once, synced, and never changed; one is deleted only by
``sweep``, when no object, part or in-flight request refers to it any more.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import os
import threading
import uuid
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

CHUNK = 4 * 1024 * 1024  # a read of a body that cannot be sent with sendfile

_root: list[Path] = []
_lock = threading.RLock()
_held: Counter[str] = Counter()  # blob name -> requests in flight that use it
_local = threading.local()

#: (blob name, offset, length)
Extent = tuple[str, int, int]


def configure(data_dir: Path) -> Path:
    """Keep blobs under ``<data_dir>/s3/blobs`` (made if missing); its path."""
    blobs = data_dir / "s3" / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    _root[:] = [blobs]
    return blobs


def blob_dir() -> Path:
    return _root[0]


def hold(names: Iterable[str]) -> None:
    """Keep these blobs from ``sweep`` until this thread's request ends (``release``)."""
    held: list[str] = _local.__dict__.setdefault("held", [])
    with _lock:
        for name in names:
            _held[name] += 1
            held.append(name)


def release() -> None:
    """The end of this thread's request: the blobs it held may be swept again."""
    held: list[str] = _local.__dict__.pop("held", [])
    with _lock:
        for name in held:
            _held[name] -= 1
            if _held[name] <= 0:
                del _held[name]


def sweep(live: set[str]) -> int:
    """Delete every blob neither in ``live`` nor held by a request; how many were deleted.
    The caller collects ``live`` holding ``lock()``, so no request can pick up a blob
    between the collection and the deletion."""
    removed = 0
    with _lock:
        for entry in os.scandir(blob_dir()):
            if entry.name not in live and entry.name not in _held:
                os.unlink(entry.path)
                removed += 1
    return removed


def discard(body: Body) -> None:
    """Delete the blobs of a body no key ever had (an upload moto refused)."""
    for name in body.names():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(blob_dir() / name)


def lock() -> threading.RLock:
    return _lock


class Body:
    """An object's (or part's) bytes as extents of blob files: what a FakeKey keeps instead
    of the bytes. Sized, sliceable and iterable as moto's code needs a body to be; ``md5``
    and ``crc32`` of exactly these bytes when known (set as they are written)."""

    def __init__(
        self, extents: Iterable[Extent], md5: str | None = None, crc32: int | None = None
    ) -> None:
        self.extents = tuple(extent for extent in extents if extent[2] > 0)
        self.size = sum(extent[2] for extent in self.extents)
        self.md5 = md5
        self.crc32 = crc32

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0

    def __repr__(self) -> str:
        return f"Body({len(self.extents)} extents, {self.size} bytes)"

    def names(self) -> set[str]:
        return {extent[0] for extent in self.extents}

    def __getitem__(self, index: slice) -> Body:
        """Bytes ``start:stop`` as a Body of the same files (no bytes copied)."""
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("a Body is sliced only by a contiguous range")
        start, stop, _ = index.indices(self.size)
        if start == 0 and stop >= self.size:
            return self
        cut: list[Extent] = []
        position = 0
        for name, offset, length in self.extents:
            first, last = max(start, position), min(stop, position + length)
            if first < last:
                cut.append((name, offset + first - position, last - first))
            position += length
        return Body(cut)

    @staticmethod
    def join(bodies: Iterable[Body]) -> Body:
        """The bodies one after the other (a completed multipart upload)."""
        return Body(extent for body in bodies for extent in body.extents)

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        for name, offset, length in self.extents:
            fd = os.open(blob_dir() / name, os.O_RDONLY)
            try:
                end = offset + length
                while offset < end:
                    data = os.pread(fd, min(size, end - offset), offset)
                    if not data:
                        raise OSError(f"blob {name} is shorter than its extent")
                    offset += len(data)
                    yield data
            finally:
                os.close(fd)

    def read(self) -> bytes:
        """All the bytes (only for moto code that needs them whole: rare, small)."""
        return b"".join(self.chunks())

    def digest(self) -> str:
        """The MD5 (hex) of the bytes, read from the files (kept once computed)."""
        if self.md5 is None:
            md5 = hashlib.md5(usedforsecurity=False)
            for chunk in self.chunks():
                md5.update(chunk)
            self.md5 = md5.hexdigest()
        return self.md5

    def checksum32(self) -> int:
        """The CRC32 of the bytes (kept once computed)."""
        if self.crc32 is None:
            crc = 0
            for chunk in self.chunks():
                crc = zlib.crc32(chunk, crc)
            self.crc32 = crc
        return self.crc32

    def __iter__(self) -> Iterator[bytes]:
        """The WSGI response body: b"" first (werkzeug then sends the headers), then each
        extent sent from its file straight to the client's socket, or read in chunks when
        there is no socket (a test client)."""
        sock = getattr(_local, "socket", None)
        if sock is None:
            yield from self.chunks()
            return
        yield b""
        for name, offset, length in self.extents:
            with open(blob_dir() / name, "rb") as file:
                sent = sock.sendfile(file, offset, length)
                if sent != length:
                    raise OSError(f"sent {sent} of {length} bytes of blob {name}")
            yield b""

    def __getstate__(self) -> dict[str, Any]:
        return {"extents": self.extents, "md5": self.md5, "crc32": self.crc32}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["extents"], state["md5"], state["crc32"])  # type: ignore[misc]


def serve_from(sock: Any) -> None:
    """Bodies iterated by this thread go straight to ``sock`` (werkzeug's connection)."""
    _local.socket = sock


class BlobWriter:
    """A new blob being written: ``write`` the bytes, then ``finish`` (synced, as a Body
    with its MD5 and CRC32) or ``discard``. Held from its creation until the request ends,
    so a sweep never takes it."""

    def __init__(self) -> None:
        self.name = uuid.uuid4().hex
        hold([self.name])
        self._fd = os.open(blob_dir() / self.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._crc = 0
        self.size = 0
        self.extra: list[Any] = []  # other digests the request asks for (hashlib objects)

    def write(self, data: bytes | memoryview) -> None:
        self._md5.update(data)
        self._crc = zlib.crc32(data, self._crc)
        for digest in self.extra:
            digest.update(data)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(data)

    def finish(self) -> Body:
        os.fdatasync(self._fd)
        os.close(self._fd)
        self._fd = -1
        return Body([(self.name, 0, self.size)], self._md5.hexdigest(), self._crc)

    def discard(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(blob_dir() / self.name)


def write_blob(data: bytes) -> Body:
    """``data`` as a new blob (synced)."""
    writer = BlobWriter()
    try:
        writer.write(data)
        return writer.finish()
    except BaseException:
        writer.discard()
        raise


#: the system's zlib (the library Python's zlib module is built on), for its crc32_combine64
_ZLIB = ctypes.CDLL(ctypes.util.find_library("z") or "libz.so.1")
_ZLIB.crc32_combine64.restype = ctypes.c_ulong
_ZLIB.crc32_combine64.argtypes = (ctypes.c_ulong, ctypes.c_ulong, ctypes.c_int64)


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC32 of A+B from CRC32(A), CRC32(B) and len(B) (zlib's crc32_combine64), so a
    multipart upload's whole-object CRC is known without reading its parts again."""
    return int(_ZLIB.crc32_combine64(crc1, crc2, length2)) & 0xFFFFFFFF
