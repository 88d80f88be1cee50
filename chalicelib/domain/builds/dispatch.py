"""Sending jobs to build hosts: what the job message carries, and holding a job until a
registered, healthy node serves its arch and recipe (or job) type and has room for it.

A job no node serves stays ``creating`` (filed in the sparse ``awaiting_node`` index) and is
dispatched when such a node's heartbeat arrives, or ends in ``error`` once it has waited
``unserved_wait_seconds``, with a reason naming what is missing. A job whose nodes are all busy
(a host builds one job at a time) waits the same way, without that limit, and is dispatched
when a job of its arch ends or a node heartbeats: a job never sits in a build queue, where
the state machine's heartbeat clock would run out before a host picks it up.
"""

from __future__ import annotations

import time
from typing import Any

from chalicelib import observability
from chalicelib.adapters import records
from chalicelib.adapters.artifacts import (
    ArtifactStore,
    image_prefix,
    job_cancel_key,
    job_log_chunk_prefix,
    job_log_key,
)
from chalicelib.adapters.models import ImageModel, JobModel, PublicKeyModel, RecipeModel
from chalicelib.adapters.workflows import Workflows
from chalicelib.config import Settings
from chalicelib.domain.builds import nodes as build_nodes
from chalicelib.domain.builds.job_records import KIND, finish, set_status, update
from chalicelib.domain.builds.results import epoch
from chalicelib.domain.ims import artifact_links
from chalicelib.errors import DomainError


class AlreadyClaimed(Exception):
    """Another dispatcher took this job first."""


def needs(job: JobModel) -> str:
    if job.job_type == "customize":
        return f"customize jobs for arch '{job.arch}'"
    return f"recipe type '{job.recipe_type}' for arch '{job.arch}'"


def unserved_reason(job: JobModel, settings: Settings) -> str | None:
    fresh = settings.node_fresh_seconds
    if build_nodes.serving(job.arch, job.job_type, job.recipe_type or "", fresh):
        return None
    offered = build_nodes.capabilities(fresh) or ["none"]
    return (
        f"no registered, healthy build node serves {needs(job)}; nodes offer: {', '.join(offered)}"
    )


def busy_reason(job: JobModel, settings: Settings, dispatched_now: int = 0) -> str | None:
    """Why every node that serves the job is taken (one job each), or None if one is free.
    ``dispatched_now``: jobs of this arch this pass dispatched (the index may lag)."""
    nodes = build_nodes.serving(
        job.arch, job.job_type, job.recipe_type or "", settings.node_fresh_seconds
    )
    running = dispatched_now + sum(
        1
        for other in JobModel.by_unfinished.query(KIND)
        if other.arch == job.arch and other.awaiting_node is None and other.id != job.id
    )
    if running < len(nodes):
        return None
    return (
        f"every build node serving {needs(job)} is busy "
        f"({len(nodes)} node(s), {running} job(s) dispatched)"
    )


def begin(
    job: JobModel, store: ArtifactStore, workflows: Workflows, settings: Settings
) -> JobModel:
    """Store a new job and dispatch it, or file it to wait for a node."""
    if job.recipe_type == "packer" and not build_nodes.advertised("packer"):
        finish_now(job, "no registered build node advertises recipe type 'packer'")
        return records.insert(job)
    waiting = unserved_reason(job, settings) or busy_reason(job, settings)
    if waiting:
        job.awaiting_node = KIND
        job.status_reason = f"waiting: {waiting}"
        observability.logger().info("job waits for a build node", extra={"reason": waiting})
        return records.insert(job)
    records.insert(job)
    return start(job, store, workflows, settings)


def finish_now(job: JobModel, reason: str) -> None:
    set_status(job, "error")
    job.status_reason = reason
    observability.count("JobsFailed")


def start(
    job: JobModel, store: ArtifactStore, workflows: Workflows, settings: Settings
) -> JobModel:
    try:
        workflows.start_build(job.id, job_input(job, store, settings))
    except Exception as exc:  # the record must not claim a build that never started
        observability.logger().exception("could not start the build execution")
        finish(job.id, "error", f"the build could not be started: {exc}")
        if isinstance(exc, DomainError):
            raise
        raise DomainError(f"the build could not be started: {exc}") from exc
    observability.count("JobsStarted")
    observability.logger().info("build dispatched", extra={"arch": job.arch})
    return job


def dispatch_waiting(
    store: ArtifactStore, workflows: Workflows, settings: Settings, now: float | None = None
) -> list[str]:
    """Dispatch waiting jobs, oldest first, that a node serves and has room for; end those no
    node served for too long."""
    now = now or time.time()
    outcomes = []
    dispatched: dict[str, int] = {}
    for job in list(JobModel.by_awaiting_node.query(KIND)):
        reason = unserved_reason(job, settings)
        if reason is None:
            if busy_reason(job, settings, dispatched.get(job.arch, 0)):
                continue
            try:
                claimed = update(job.id, _claim)
            except AlreadyClaimed:
                continue
            start(claimed, store, workflows, settings)
            dispatched[job.arch] = dispatched.get(job.arch, 0) + 1
            outcomes.append(f"{job.id}: dispatched")
        elif now - epoch(job.created) >= settings.unserved_wait_seconds:
            waited = settings.unserved_wait_seconds
            if finish(job.id, "error", f"no build node after {waited} s: {reason}"):
                observability.count("JobsFailed")
                outcomes.append(f"{job.id}: ended, unserved")
    return outcomes


def _claim(job: JobModel) -> None:
    if job.awaiting_node is None or job.status != "creating":
        raise AlreadyClaimed(job.id)
    job.awaiting_node = None
    job.status_reason = None


def job_input(job: JobModel, store: ArtifactStore, settings: Settings) -> dict[str, Any]:
    """What the state machine carries to the build host (the host never reads DynamoDB)."""
    key = records.find(PublicKeyModel, job.public_key_id) if job.public_key_id else None
    message: dict[str, Any] = {
        "job_id": job.id,
        "job_type": job.job_type,
        "tenant": job.tenant,
        "arch": job.arch,
        "recipe_type": job.recipe_type or "",
        "recipe": {},
        "bucket": store.bucket,
        "image_id": job.planned_image_id,
        "artifact_prefix": image_prefix(job.planned_image_id),
        "log_key": job_log_key(job.id),
        "log_chunk_prefix": job_log_chunk_prefix(job.id),
        "cancel_key": job_cancel_key(job.id),
        "image_root_archive_name": job.image_root_archive_name,
        "kernel_file_name": job.kernel_file_name,
        "initrd_file_name": job.initrd_file_name,
        "template_dictionary": {},
        "source_date_epoch": int(epoch(job.created)),
        "enable_debug": job.enable_debug,
        "public_key": key.public_key if key is not None else "",
        "ssh_containers": [
            {"name": c["name"], "jail": bool(c.get("jail"))} for c in job.ssh_containers or []
        ],
        "user_wait_seconds": settings.user_wait_seconds,
    }
    if job.job_type == "customize":
        message["source_image"] = _source_image(job, store)
        return message
    if job.compose_id:  # a composer image: the recipe Kiln generated, and the upload target
        message["recipe"] = {
            "bucket": store.bucket,
            "key": job.recipe_key,
            "sha256": job.recipe_sha256,
        }
        message["upload"] = job.upload
        return message
    recipe = records.find(RecipeModel, job.artifact_id)
    if recipe is not None:
        message["recipe"] = {
            "bucket": store.bucket,
            "key": store.key_of(recipe.link["path"]) if recipe.link else "",
            "sha256": recipe.archive_sha256,
        }
        message["template_dictionary"] = {i["key"]: i["value"] for i in recipe.template_dictionary}
        message["source_date_epoch"] = int(epoch(recipe.created))
    return message


def _source_image(job: JobModel, store: ArtifactStore) -> dict[str, Any]:
    """A customize job's image: its manifest and the artifacts in it the job's tenant may read,
    by key (the host fetches those and nothing else)."""
    image = records.find(ImageModel, job.artifact_id)
    manifest = store.own_key(image.link["path"]) if image and image.link else None
    if manifest is None or not artifact_links.may_link(manifest, job.tenant):
        return {"image_id": job.artifact_id, "manifest_key": None, "artifacts": []}
    listed = artifact_links.manifest_artifacts(store, manifest, job.tenant)
    artifacts = [{k: a[k] for k in ("type", "key", "sha256")} for a in listed]
    return {"image_id": job.artifact_id, "manifest_key": manifest, "artifacts": artifacts}
