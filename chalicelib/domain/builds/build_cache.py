"""The API side of the content-addressed build cache (docs/build-cache.md): the entries and the
holds on the sets of artifacts they name. Build hosts only read entries (builders/
build_cache.py); this module is the only writer.

- A create job is cacheable under its tenant's prefix ``build-cache/<tenant>/``: one tenant
  is never served another's build (``prefix_for``).
- ``record`` runs when a job succeeds (and again when its result is replayed): a miss makes
  the entry (a conditional put: of two identical builds, one makes it, the other keeps its own
  set for itself), then ``entry.json`` in S3, the file hosts look up; a hit holds the set for
  the job and counts the hit.
- A set's objects are deleted only when its last hold goes (``release``): the entry's
  (``entry``, then ``evicted`` for a while: build_cache_eviction.py) and each job's whose
  records point at them (``job:<job_id>``; an IMS image's purge releases its job's).
"""

from __future__ import annotations

import re
import time
from typing import Any

from pynamodb.exceptions import DeleteError, PutError, UpdateError

from chalicelib import observability, safe_json
from chalicelib.adapters import records
from chalicelib.adapters.artifacts import (
    ArtifactStore,
    ObjectMissing,
    build_cache_entry_key,
    build_cache_prefix,
    manifest_key,
)
from chalicelib.adapters.build_cache_models import ArtifactHoldModel, BuildCacheModel
from chalicelib.adapters.models import JobModel
from chalicelib.domain.builds.kinds import Ports
from chalicelib.host_protocol import BuildOutput

ENTRY_FORMAT = "kiln-build-cache-entry/1"
ENTRY, EVICTED = "entry", "evicted"  # holders besides jobs
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+=-]{0,127}$")  # a tenant fit for a key


def job_holder(job_id: str) -> str:
    return f"job:{job_id}"


def prefix_for(job: JobModel) -> str:
    """The job message's ``cache_prefix``: the tenant's cache for create jobs; "" (never
    cached) for other job types and for a tenant name that cannot be one key segment."""
    if job.job_type != "create" or not _SEGMENT.match(job.tenant or ""):
        return ""
    return build_cache_prefix(job.tenant)


def entry_id(tenant: str, key: str) -> str:
    return f"{tenant}/{key}"


# -- a job's success -----------------------------------------------------------------------------
def record(job: JobModel, output: BuildOutput, ports: Ports) -> str:
    """What a successful job's ``cache`` facts mean to the cache; idempotent (a replayed result
    runs it again). Returns a line for the log ("" for a job that was not cacheable)."""
    facts = output.cache
    if not facts:
        return ""
    tenant_prefix, key = prefix_for(job), str(facts.get("key") or "")
    prefix = str(facts.get("prefix") or "")
    if not tenant_prefix or not _DIGEST.match(key):
        return _ignored(job, f"not cacheable here (key {key!r})")
    if facts.get("hit"):
        if not re.fullmatch(rf"{re.escape(tenant_prefix + key)}/[^/]+/", prefix):
            return _ignored(job, f"a hit outside the tenant's entry ({prefix!r})")
        return _record_hit(job, key, prefix)
    if prefix != f"{tenant_prefix}{key}/{job.id}/":
        return _ignored(job, f"a miss published elsewhere ({prefix!r})")
    return _record_miss(job, key, prefix, ports.artifacts)


def _ignored(job: JobModel, why: str) -> str:
    observability.logger().warning("build cache facts ignored", extra={"job": job.id, "why": why})
    return f"build cache: ignored: {why}"


def _record_hit(job: JobModel, key: str, prefix: str) -> str:
    if hold(prefix, job_holder(job.id), job.tenant):
        try:
            BuildCacheModel(id=entry_id(job.tenant, key)).update(
                actions=[BuildCacheModel.last_used.set(time.time()), BuildCacheModel.hits.add(1)],
                condition=BuildCacheModel.id.exists(),
            )
        except UpdateError as exc:
            if "ConditionalCheckFailed" not in str(exc):
                raise  # else the entry was evicted meanwhile: the job's hold keeps the set
    observability.count("BuildCacheHits")
    observability.logger().info("build cache hit", extra={"key": key, "set": prefix})
    return f"build cache: hit {key} ({prefix})"


def _record_miss(job: JobModel, key: str, prefix: str, store: ArtifactStore) -> str:
    hold(prefix, job_holder(job.id), job.tenant)  # first: the set is never left unheld
    listed = _listed(store, manifest_key(job.planned_image_id), prefix)
    if not listed:
        return _ignored(job, f"the manifest lists nothing under {prefix}: no entry")
    entry = BuildCacheModel(
        id=entry_id(job.tenant, key),
        tenant=job.tenant,
        key=key,
        set_prefix=prefix,
        artifacts=listed,
        size=sum(int(item.get("size") or 0) for item in listed),
        created=records.utc_now(),
        last_used=time.time(),
        hits=0,
        source_job=job.id,
    )
    try:
        entry.save(condition=BuildCacheModel.id.does_not_exist())
    except PutError as exc:
        if not records.lost_race(exc):
            raise
        existing = records.find(BuildCacheModel, entry.id)
        if existing is not None and existing.source_job == job.id:
            entry = existing  # a replayed result: finish what it began
        elif existing is None or _intact(existing, store) or not _replaced(existing, entry):
            observability.logger().info(
                "build cache: another build made the entry", extra={"key": key}
            )
            return f"build cache: miss {key}; the entry came from another build"
        else:  # the entry's set lost objects (its hosts built again): this set replaces it
            release(existing.set_prefix, ENTRY, store)
    hold(prefix, ENTRY, job.tenant)
    store.put_json(build_cache_entry_key(job.tenant, key), entry_document(entry))
    observability.count("BuildCacheEntries")
    return f"build cache: miss {key}; entry made ({entry.size} bytes)"


def _intact(entry: BuildCacheModel, store: ArtifactStore) -> bool:
    """Whether every object the entry lists is still there."""
    for item in entry.artifacts or []:
        key = store.own_key(str((item.get("link") or {}).get("path", "")))
        if key is None or not store.exists(key):
            return False
    return True


def _replaced(existing: BuildCacheModel, entry: BuildCacheModel) -> bool:
    """Put ``entry`` in place of ``existing``, unless another writer changed it first."""
    try:
        entry.save(condition=BuildCacheModel.source_job == existing.source_job)
    except PutError as exc:
        if records.lost_race(exc):
            return False
        raise
    return True


def _listed(store: ArtifactStore, manifest: str, prefix: str) -> list[dict[str, Any]]:
    """The manifest.json entries of the job's artifacts in its set."""
    try:
        document = safe_json.loads(store.read(manifest))
    except (ObjectMissing, safe_json.MalformedJSON):
        return []
    items = document.get("artifacts") if isinstance(document, dict) else None
    wanted = store.url(prefix)
    return [
        item
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict)
        and isinstance(item.get("link"), dict)
        and str(item["link"].get("path", "")).startswith(wanted)
    ]


def entry_document(entry: BuildCacheModel) -> dict[str, Any]:
    """``entry.json``, as the build hosts read it."""
    return {
        "format": ENTRY_FORMAT,
        "key": entry.key,
        "tenant": entry.tenant,
        "set_prefix": entry.set_prefix,
        "source_job": entry.source_job,
        "size": int(entry.size or 0),
        "created": entry.created,
        "artifacts": list(entry.artifacts or []),
    }


# -- holds ---------------------------------------------------------------------------------------
def hold(prefix: str, holder: str, tenant: str, since: float | None = None) -> bool:
    """Hold the set under ``prefix`` for ``holder``; False if it already was."""
    held = ArtifactHoldModel(
        set_prefix=prefix, holder=holder, tenant=tenant, since=since or time.time()
    )
    try:
        held.save(condition=ArtifactHoldModel.set_prefix.does_not_exist())
    except PutError as exc:
        if records.lost_race(exc):
            return False
        raise
    return True


def release(prefix: str, holder: str, store: ArtifactStore) -> list[str]:
    """Drop ``holder``'s hold; if it was the set's last, delete the set's objects (returns
    their keys). Idempotent."""
    try:
        ArtifactHoldModel(set_prefix=prefix, holder=holder).delete()
    except DeleteError as exc:
        if not records.lost_race(exc):
            raise
    return delete_if_unheld(prefix, store)


def delete_if_unheld(prefix: str, store: ArtifactStore) -> list[str]:
    if held(prefix):
        return []
    deleted = store.delete_under(prefix)
    observability.logger().info(
        "build cache set deleted", extra={"set": prefix, "objects": len(deleted)}
    )
    return deleted


def held(prefix: str) -> bool:
    return any(True for _ in ArtifactHoldModel.query(prefix, consistent_read=True, limit=1))


def release_job(job_id: str | None, store: ArtifactStore) -> list[str]:
    """A job's records are gone (an IMS image purged): drop the job's holds; the keys of the
    sets' objects deleted because no hold was left."""
    if not job_id:
        return []
    deleted: list[str] = []
    for found in list(ArtifactHoldModel.by_holder.query(job_holder(job_id))):
        deleted += release(found.set_prefix, found.holder, store)
    return deleted
