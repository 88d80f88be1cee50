"""Bounding the dependency and source cache the build hosts share (builders/cachito/
dep_cache.py) by age and size, from the schedule. A cached object's ``LastModified`` is when
it was last used (a host copies a hit onto itself). First every object unused for longer than
``cachito_cache_max_age_seconds`` goes; then, while the cache is larger than
``cachito_cache_max_bytes``, the least recently used. An index entry whose object was evicted
is harmless: the next request misses, fetches again and stores it anew."""

from __future__ import annotations

import time

from chalicelib.adapters.artifacts import ArtifactStore
from chalicelib.config import Settings

CACHE_PREFIX = "cachito-cache/"


def evict(settings: Settings, store: ArtifactStore, now: float | None = None) -> list[str]:
    now = now or time.time()
    entries = sorted(store.listing(CACHE_PREFIX), key=lambda entry: entry[2])  # LRU first
    max_age, max_bytes = settings.cachito_cache_max_age_seconds, settings.cachito_cache_max_bytes
    total = sum(size for _, size, _ in entries)
    evicted: list[str] = []
    for key, size, used in entries:
        too_old = now - used > max_age
        if not too_old and total <= max_bytes:
            break  # sorted by last use: everything after is newer and the cache fits
        store.delete(key)
        total -= size
        evicted.append(f"{key}: {'unused too long' if too_old else 'cache over its size'}")
    return evicted
