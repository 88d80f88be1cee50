"""Streaming uploads: bytes are counted and hashed as they pass, under a size limit, and never
held whole.

Used by Glance (domain/glance/data.py: PUT /file and PUT /stage read through ``body_chunks``
and ``hashed``; direct.py hashes a direct upload where it landed; imports.py a web-download or
a build output) and by the archive readers (tar_gz.py for IMS recipes, zip_archive.py for the
coming OMPS face), which hash the compressed bytes they read. Rejections are ``TooLarge`` and
``BodyCutShort`` (rejection.py); each caller words them for its face.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, BinaryIO

from chalicelib.domain.uploads.rejection import BodyCutShort, TooLarge

#: the algorithms a StreamHasher computes (md5 is a checksum here, not a security measure)
_CONSTRUCTORS: dict[str, Callable[[], Any]] = {
    "md5": lambda: hashlib.md5(usedforsecurity=False),
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
ALGORITHMS = tuple(_CONSTRUCTORS)


class StreamHasher:
    """Size and any of md5, sha256 and sha512 of a stream, as it passes.

    For large chunks every algorithm but the first runs on a second thread while the first runs
    on this one (hashlib lets go of the GIL), one chunk apart; with one algorithm there is no
    second thread. ``size`` starts at ``size`` (a stream hashed elsewhere before)."""

    PARALLEL_FROM = 256 * 1024

    def __init__(self, algorithms: Sequence[str], size: int = 0) -> None:
        unknown = [name for name in algorithms if name not in _CONSTRUCTORS]
        if unknown or not algorithms:
            raise ValueError(f"hash algorithms must be some of {ALGORITHMS}, not {unknown}")
        self.size = size
        self._hashes = {name: _CONSTRUCTORS[name]() for name in algorithms}
        first, *others = self._hashes.values()
        self._first, self._others = first, others
        self._helper: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: concurrent.futures.Future[None] | None = None

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if len(chunk) < self.PARALLEL_FROM or not self._others:
            self._settle()
            for digest in self._hashes.values():
                digest.update(chunk)
            return
        if self._helper is None:
            self._helper = concurrent.futures.ThreadPoolExecutor(1, "digest")
        if self._pending is not None:
            self._pending.result()
        self._pending = self._helper.submit(self._update_others, chunk)
        self._first.update(chunk)

    def _update_others(self, chunk: bytes) -> None:
        for digest in self._others:
            digest.update(chunk)

    def _settle(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def hexdigest(self, algorithm: str) -> str:
        """The hex digest of everything hashed so far."""
        self._settle()
        return str(self._hashes[algorithm].hexdigest())

    def close(self) -> None:
        """Wait for the second thread's work and let the thread go (idempotent)."""
        self._settle()
        if self._helper is not None:
            self._helper.shutdown(wait=True)
            self._helper = None


def hashed(
    chunks: Iterable[bytes], hasher: StreamHasher, limit: int | None = None
) -> Iterator[bytes]:
    """The chunks, each counted and hashed on its way; TooLarge as soon as the hasher has seen
    more than ``limit`` bytes (the chunk that crosses it is not passed on)."""
    for chunk in chunks:
        hasher.update(chunk)
        if limit is not None and hasher.size > limit:
            raise TooLarge(limit, hasher.size)
        yield chunk


def hash_all(chunks: Iterable[bytes], hasher: StreamHasher, limit: int | None = None) -> None:
    """Read the chunks to their end through ``hashed`` (for data that is already stored)."""
    for _chunk in hashed(chunks, hasher, limit):
        pass


def check_declared(length: int | None, limit: int) -> None:
    """TooLarge (``declared``) when a sender announces more than ``limit`` bytes."""
    if length is not None and length > limit:
        raise TooLarge(limit, length, declared=True)


def body_chunks(stream: BinaryIO, length: int | None, chunk_size: int) -> Iterator[bytes]:
    """A request body in chunks of at most ``chunk_size``: exactly ``length`` bytes when it is
    declared (BodyCutShort when the body ends before), else up to the body's end. Errors of
    ``stream.read`` itself (a client gone: OSError) pass through."""
    received = 0
    while True:
        want = chunk_size if length is None else min(chunk_size, length - received)
        if want <= 0:
            return
        chunk = stream.read(want)
        if not chunk:
            if length is not None and received < length:
                raise BodyCutShort(received, length)
            return
        received += len(chunk)
        yield chunk
