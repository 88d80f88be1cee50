"""The host's side of the content-addressed build cache (docs/build-cache.md).

Before building, the host resolves the build plan (``Backend.resolve``); the sha256 of its
canonical JSON is the cache key. The API side keeps the entries: ``<cache_prefix><key>/
entry.json`` lists the artifacts (as manifest.json entries) an earlier build of that plan
published. A hit lists them again; a miss publishes under ``<cache_prefix><key>/<job_id>/``
so the API side can make the entry from the job's result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from builders.backends.base import DISK_TYPES, Artifact, Backend, BuildContext, BuildError
from chalicelib.host_protocol import JobMessage

ENTRY_FILE = "entry.json"
_DISK_TYPES = frozenset(str(kind) for kind in DISK_TYPES.values())
_ENTRY_LIMIT = 1 << 20  # an entry lists a handful of artifacts


@dataclasses.dataclass(frozen=True)
class CacheHit:
    source_job: str  # the job that built the artifacts
    listed: list[dict[str, Any]]  # manifest.json entries {name, type, link, size, sha256, md5}
    prefix: str = ""  # the set's prefix: where the listed artifacts are


@dataclasses.dataclass(frozen=True)
class Lookup:
    key: str  # the resolved plan's digest
    plan: dict[str, Any]  # the resolved plan
    prefix: str  # where a miss publishes its artifacts
    hit: CacheHit | None

    def facts(self) -> dict[str, Any]:
        """BuildOutput.cache."""
        if self.hit is None:
            return {"key": self.key, "hit": False, "prefix": self.prefix}
        return {
            "key": self.key,
            "hit": True,
            "prefix": self.hit.prefix,
            "source_job": self.hit.source_job,
        }


def canonical(plan: dict[str, Any]) -> bytes:
    """The plan as the key hashes it: sorted keys, no spaces, UTF-8."""
    return json.dumps(plan, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def plan_key(plan: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(plan)).hexdigest()


def look_up(job: JobMessage, backend: Backend, ctx: BuildContext, s3: Any) -> Lookup | None:
    """None when the job is not cacheable (no cache prefix, a backend that cannot resolve)."""
    resolve: Callable[[BuildContext], dict[str, Any] | None] | None = getattr(
        backend, "resolve", None
    )
    if not job.cache_prefix or resolve is None:
        return None
    plan = resolve(ctx)
    if plan is None:
        return None
    key = plan_key(plan)
    ctx.log(f"I: kiln: resolved build plan {key}: {canonical(plan).decode()}")
    prefix = f"{job.cache_prefix}{key}/{job.job_id}/"
    if not job.use_cache:
        ctx.log(f"I: kiln: build cache: a fresh build was asked for; publishing under {prefix}")
        return Lookup(key, plan, prefix, None)
    hit = _find(job, key, s3, ctx.log)
    if hit is None:
        ctx.log(f"I: kiln: build cache miss {key}: building, publishing under {prefix}")
    return Lookup(key, plan, prefix, hit)


def _find(job: JobMessage, key: str, s3: Any, log: Callable[[str], None]) -> CacheHit | None:
    """The entry for ``key``, if it exists and every object it lists is still there (and
    unchanged: the same ETag)."""
    entry_key = f"{job.cache_prefix}{key}/{ENTRY_FILE}"
    try:
        body = s3.get_object(Bucket=job.bucket, Key=entry_key)["Body"].read(_ENTRY_LIMIT)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    try:
        entry = json.loads(body)
        set_prefix = str(entry["set_prefix"])
        listed = list(entry["artifacts"])
        source_job = str(entry["source_job"])
    except (ValueError, KeyError, TypeError):
        log(f"W: kiln: build cache entry {entry_key} is unreadable: building")
        return None
    if not set_prefix.startswith(f"{job.cache_prefix}{key}/") or not listed:
        log(f"W: kiln: build cache entry {entry_key} names no artifacts of its own: building")
        return None
    for item in listed:
        problem = _missing(item, job.bucket, set_prefix, s3)
        if problem:
            log(f"W: kiln: build cache entry {key}: {problem}: treated as a miss")
            return None
    return CacheHit(source_job=source_job, listed=listed, prefix=set_prefix)


def _missing(item: Any, bucket: str, set_prefix: str, s3: Any) -> str | None:
    """Why an entry's artifact cannot be served (gone, changed, elsewhere), or None."""
    link = item.get("link") if isinstance(item, dict) else None
    if not isinstance(link, dict):
        return f"an artifact without a link ({item!r:.200})"
    path, head = link.get("path"), f"s3://{bucket}/"
    if not isinstance(path, str) or not path.startswith(head + set_prefix):
        return f"an artifact outside its set ({path!r})"
    object_key = path[len(head) :]
    try:
        found = s3.head_object(Bucket=bucket, Key=object_key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return f"{object_key} is gone"
        raise
    etag = str(found.get("ETag", "")).strip('"')
    if link.get("etag") and etag != link["etag"]:
        return f"{object_key} changed (ETag {etag}, the entry says {link['etag']})"
    return None


def local_disks(
    hit: CacheHit, job: JobMessage, s3: Any, out_dir: Path, upload_wanted: bool
) -> list[Artifact]:
    """The hit's artifacts as local files where the job's upload needs them (its disks)."""
    if not upload_wanted:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    fetched = []
    head = f"s3://{job.bucket}/"
    for item in hit.listed:
        if item.get("type") not in _DISK_TYPES:
            continue
        key = str(item["link"]["path"])[len(head) :]
        target = out_dir / str(item.get("name") or key.rsplit("/", 1)[-1])
        s3.download_file(job.bucket, key, str(target))
        digest = hashlib.sha256()
        with target.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        if item.get("sha256") and digest.hexdigest() != item["sha256"]:
            raise BuildError(
                f"the cached disk {key} does not match its entry (sha256 {digest.hexdigest()}, "
                f"expected {item['sha256']}); ask for a fresh build"
            )
        fetched.append(Artifact(path=target, type=str(item["type"])))
    return fetched
