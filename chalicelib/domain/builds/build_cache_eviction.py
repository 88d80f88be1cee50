"""Keeping the build cache within its age and size, from the schedule (docs/build-cache.md).

1. Entries unused for longer than ``build_cache_max_age_seconds`` go; then, while the entries
   together are larger than ``build_cache_max_bytes``, the least recently used (one Query of
   ``by_last_used``, oldest first). Evicting an entry deletes its record (only if no hit
   bumped it meanwhile), replaces its ``entry`` hold by an ``evicted`` one and deletes its
   ``entry.json``.
2. An ``evicted`` hold goes once ``job_stale_seconds`` have passed: a job that found the entry
   before it went has ended by then (and holds the set itself if it succeeded). When no hold
   is left, the set's objects are deleted.
3. Orphans (listing S3): a set no one holds, whose job is over (a miss whose job failed),
   older than ``orphan_grace_seconds``, is deleted; an ``entry.json`` without its record
   (an eviction that was interrupted) is finished.
"""

from __future__ import annotations

import time

from pynamodb.exceptions import DeleteError

from chalicelib import safe_json
from chalicelib.adapters import records
from chalicelib.adapters.artifacts import BUILD_CACHE, ArtifactStore, ObjectMissing
from chalicelib.adapters.build_cache_models import (
    ENTRY_KIND,
    ArtifactHoldModel,
    BuildCacheModel,
)
from chalicelib.adapters.models import JobModel
from chalicelib.config import Settings
from chalicelib.domain.builds import build_cache
from chalicelib.domain.states import JOB_TERMINAL

ENTRY_FILE = "entry.json"


def evict(settings: Settings, store: ArtifactStore, now: float | None = None) -> list[str]:
    """The schedule's step: one line per entry evicted and per set deleted."""
    now = now or time.time()
    lines = _evict_entries(settings, store, now)
    lines += _expire_evicted(store, now - settings.job_stale_seconds)
    lines += _remove_orphans(store, now - settings.orphan_grace_seconds, now)
    return lines


def _evict_entries(settings: Settings, store: ArtifactStore, now: float) -> list[str]:
    entries = list(BuildCacheModel.by_last_used.query(ENTRY_KIND))  # least recently used first
    total = sum(int(entry.size or 0) for entry in entries)
    max_age, max_bytes = settings.build_cache_max_age_seconds, settings.build_cache_max_bytes
    lines = []
    for entry in entries:
        too_old = now - float(entry.last_used) > max_age
        if not too_old and total <= max_bytes:
            break  # by last use: every entry after is newer and the cache fits
        if not _evict(entry, store, now):
            continue  # used meanwhile: kept
        total -= int(entry.size or 0)
        why = "unused too long" if too_old else "cache over its size"
        lines.append(f"entry {entry.id}: evicted, {why} ({int(entry.size or 0)} bytes)")
    return lines


def _evict(entry: BuildCacheModel, store: ArtifactStore, now: float) -> bool:
    try:
        entry.delete(condition=BuildCacheModel.last_used == entry.last_used)
    except DeleteError as exc:
        if records.lost_race(exc):
            return False
        raise
    _retire(entry.set_prefix, entry.tenant, entry.key, store, now)
    return True


def _retire(prefix: str, tenant: str, key: str, store: ArtifactStore, now: float) -> None:
    """The entry's hold becomes an ``evicted`` one; no host finds the entry any more."""
    build_cache.hold(prefix, build_cache.EVICTED, tenant, since=now)
    try:
        ArtifactHoldModel(set_prefix=prefix, holder=build_cache.ENTRY).delete()
    except DeleteError as exc:
        if not records.lost_race(exc):
            raise
    store.delete(f"{BUILD_CACHE}/{tenant}/{key}/{ENTRY_FILE}")


def _expire_evicted(store: ArtifactStore, cutoff: float) -> list[str]:
    lines = []
    for found in list(ArtifactHoldModel.by_holder.query(build_cache.EVICTED)):
        if float(found.since) > cutoff:
            continue
        deleted = build_cache.release(found.set_prefix, build_cache.EVICTED, store)
        state = f"{len(deleted)} objects deleted" if deleted else "still held by jobs"
        lines.append(f"set {found.set_prefix}: evicted entry's hold released, {state}")
    return lines


def _remove_orphans(store: ArtifactStore, cutoff: float, now: float) -> list[str]:
    sets: dict[str, float] = {}  # set prefix -> its newest object's time
    entry_files: list[tuple[str, float]] = []
    for key, modified in store.objects(f"{BUILD_CACHE}/"):
        parts = key.split("/")
        if len(parts) == 4 and parts[3] == ENTRY_FILE:
            entry_files.append((key, modified))
        elif len(parts) >= 5:
            prefix = "/".join(parts[:4]) + "/"
            sets[prefix] = max(modified, sets.get(prefix, 0.0))
    lines = []
    for prefix, newest in sorted(sets.items()):
        if newest > cutoff or build_cache.held(prefix):
            continue
        job = records.find(JobModel, prefix.split("/")[3])
        if job is not None and job.status not in JOB_TERMINAL:
            continue  # a miss still building or answering: its result holds the set
        deleted = build_cache.delete_if_unheld(prefix, store)
        lines.append(f"set {prefix}: no holder, {len(deleted)} objects deleted")
    for key, modified in entry_files:
        _, tenant, digest, _ = key.split("/")
        if modified > cutoff or records.find(BuildCacheModel, f"{tenant}/{digest}") is not None:
            continue
        lines.append(_finish_eviction(key, tenant, digest, store, now))
    return lines


def _finish_eviction(key: str, tenant: str, digest: str, store: ArtifactStore, now: float) -> str:
    """An ``entry.json`` whose record is gone: an eviction stopped half way; finish it."""
    try:
        document = safe_json.loads(store.read(key))
        prefix = str(document["set_prefix"]) if isinstance(document, dict) else ""
    except (ObjectMissing, safe_json.MalformedJSON, KeyError):
        prefix = ""
    if prefix.startswith(f"{BUILD_CACHE}/{tenant}/{digest}/"):
        _retire(prefix, tenant, digest, store, now)
    else:
        store.delete(key)
    return f"entry {tenant}/{digest}: {ENTRY_FILE} without its record, eviction finished"
