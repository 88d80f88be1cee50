"""A job's log while it runs: S3 has no append, so new lines go up as numbered chunk objects,
``<log_chunk_prefix><seq:06d>.log`` (text/plain, from 000000), every few seconds when there
are new lines. The chunks in order, concatenated, are the log so far; once the job ends and
the chunker is closed they are the whole log, byte for byte what goes to ``log_key``.

A chunk, once formed, never changes: if its upload fails it is sent again as it was on the
next tick (later lines wait for the next chunk), so a reader never sees a chunk shrink or grow
and no line is lost or repeated. Failures are never fatal (the full log is uploaded anyway).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

DEFAULT_INTERVAL = 2.0
CLOSE_ATTEMPTS = 3

_log = logging.getLogger(__name__)


def chunk_key(prefix: str, seq: int) -> str:
    return f"{prefix}{seq:06d}.log"


def chunk_body(lines: list[str]) -> bytes:
    """Lines as the full log writes them: each ends with a newline."""
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


class LiveLog:
    """Ships ``lines_from(n)`` (the log's lines from index n on) as chunks while running."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        prefix: str,
        lines_from: Callable[[int], list[str]],
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self._s3, self._bucket, self._prefix = s3, bucket, prefix
        self._lines_from = lines_from
        self._interval = interval
        self._sent = 0  # lines in chunks uploaded or formed
        self._seq = 0  # the next chunk's number
        self._pending: tuple[int, bytes] | None = None  # a formed chunk not yet uploaded
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LiveLog:
        self._thread = threading.Thread(target=self._loop, name="kiln-live-log", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def flush(self) -> bool:
        """Upload the pending chunk, then one of the lines since; True if nothing is left."""
        with self._lock:
            for _ in range(2):  # a chunk left over from a failed tick, then the newer lines
                if self._pending is None:
                    lines = self._lines_from(self._sent)
                    if not lines:
                        return True
                    self._pending = (self._seq, chunk_body(lines))
                    self._sent += len(lines)
                    self._seq += 1
                seq, body = self._pending
                key = chunk_key(self._prefix, seq)
                try:
                    self._s3.put_object(
                        Bucket=self._bucket, Key=key, Body=body, ContentType="text/plain"
                    )
                except Exception as exc:  # retried on the next tick; never fatal
                    _log.warning("log chunk %s not uploaded (will retry): %s", key, exc)
                    return False
                self._pending = None
            return not self._lines_from(self._sent)

    def close(self) -> None:
        """Stop the thread and upload every line so far (may be called again: flushes lines
        logged since the last call)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        for _ in range(CLOSE_ATTEMPTS):
            if self.flush():
                return
        _log.warning("log chunks under %s incomplete; the full log has every line", self._prefix)


class NoLiveLog:
    """A job message without ``log_chunk_prefix``: no chunks, as before."""

    def start(self) -> NoLiveLog:
        return self

    def close(self) -> None:
        return None
