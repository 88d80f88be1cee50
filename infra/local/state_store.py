"""The local stack's durable state (issue: "The embedded stack keeps its data"): one SQLite file,
``<data dir>/state.db``, written through by the moto process before each answer goes out, and
read back when it starts. Records are after-images: (kind, key) -> bytes, e.g.
("dynamodb-item", "<table>\\x00<hash>\\x00<range>") -> the item's JSON.

WAL mode with ``synchronous=NORMAL``: a ``kill -9`` of the stack loses nothing it acknowledged
(the WAL is in the file system's cache, which outlives the process); a power loss at most
what the last second's checkpoint had not synced. Writes in one ``batch()`` land together or
not at all. Thread-safe: moto serves requests on many threads.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records ("
    " kind TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (kind, key))"
)


class StateStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)
        self._lock = threading.RLock()
        self._depth = 0

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Every put and delete inside lands in one transaction (nested batches join it)."""
        with self._lock:
            if self._depth == 0:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("COMMIT")

    def put(self, kind: str, key: str, value: bytes) -> None:
        with self.batch():
            self._db.execute(
                "INSERT OR REPLACE INTO records (kind, key, value) VALUES (?, ?, ?)",
                (kind, key, value),
            )

    def delete(self, kind: str, key: str) -> None:
        with self.batch():
            self._db.execute("DELETE FROM records WHERE kind = ? AND key = ?", (kind, key))

    def delete_prefix(self, kind: str, prefix: str) -> None:
        """Every record of ``kind`` whose key starts with ``prefix`` (a table's items, ...).
        Compared as bytes: SQLite's text functions stop at a NUL, and keys hold them."""
        with self.batch():
            self._db.execute(
                "DELETE FROM records WHERE kind = ?"
                " AND substr(CAST(key AS BLOB), 1, ?) = CAST(? AS BLOB)",
                (kind, len(prefix.encode()), prefix),
            )

    def get(self, kind: str, key: str) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM records WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def items(self, kind: str) -> list[tuple[str, bytes]]:
        """Every record of ``kind``, by key."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM records WHERE kind = ? ORDER BY key", (kind,)
            ).fetchall()
        return [(key, bytes(value)) for key, value in rows]

    def checkpoint(self) -> None:
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()


_current: list[StateStore] = []


def open_store(data_dir: Path) -> StateStore:
    """The process's store (moto_process opens it once, from KILN_DATA_DIR)."""
    store = StateStore(data_dir / "state.db")
    _current[:] = [store]
    return store


def current() -> StateStore | None:
    """The open store, or None when the stack keeps no data (tests that start moto alone)."""
    return _current[0] if _current else None
