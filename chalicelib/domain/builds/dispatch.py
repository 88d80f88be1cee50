"""Sending jobs to build hosts: the job message, and holding a job until a registered,
healthy node serves its arch and recipe (or job) type and has a free slot for it.

A job is dispatched only once it holds a node's slot (capacity.py: a conditional write), so
no job ever sits in a build queue behind a busy host while the state machine's heartbeat
clock runs. A job without one stays ``creating``, filed in the sparse ``awaiting_node``
index, and is dispatched, oldest first, when a job ends or a node heartbeats. A job that no
node serves at all ends in ``error`` (NoBuildNode) once it has waited
``unserved_wait_seconds``, with a reason naming what is missing.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from chalicelib import observability
from chalicelib.adapters import records
from chalicelib.adapters.artifacts import (
    image_prefix,
    job_cancel_key,
    job_log_chunk_prefix,
    job_log_key,
)
from chalicelib.adapters.models import BuildNodeModel, JobModel
from chalicelib.config import ARCHES, Settings
from chalicelib.domain import job_kinds
from chalicelib.domain.builds import build_cache, capacity
from chalicelib.domain.builds import nodes as build_nodes
from chalicelib.domain.builds.job_records import KIND, finish, update
from chalicelib.domain.builds.kinds import Ports
from chalicelib.errors import DomainError
from chalicelib.host_protocol import FailureCode, JobMessage


class AlreadyClaimed(Exception):
    """Another dispatcher took this job first."""


def needs(job: JobModel) -> str:
    if job.job_type != "create":
        return f"{job.job_type} jobs for arch '{job.arch}'"
    return f"recipe type '{job.recipe_type}' for arch '{job.arch}'"


#: the payload key where a job kind may name a node the job should not run on while another
#: serves it (a rebuild check: the node that built the original, docs/reproducibility.md)
AVOID_NODE = "avoid_node"


def _serving(
    job: JobModel, settings: Settings, nodes: list[BuildNodeModel] | None = None
) -> list[BuildNodeModel]:
    found = build_nodes.serving(
        job.arch, job.job_type, job.recipe_type or "", settings.node_fresh_seconds, nodes=nodes
    )
    avoid = (job.payload or {}).get(AVOID_NODE)
    others = [node for node in found if node.xname != avoid]
    return others if avoid and others else found


def unserved_reason(job: JobModel, settings: Settings) -> str | None:
    if _serving(job, settings):
        return None
    offered = build_nodes.capabilities(settings.node_fresh_seconds) or ["none"]
    return (
        f"no registered, healthy build node serves {needs(job)}; nodes offer: {', '.join(offered)}"
    )


def _busy_reason(job: JobModel, nodes: list[BuildNodeModel]) -> str:
    slots = sum(len(capacity.slot_ids(node)) for node in nodes)
    return f"every build node serving {needs(job)} is busy ({len(nodes)} node(s), {slots} slot(s))"


def begin(job: JobModel, ports: Ports) -> JobModel:
    """Store a new job and dispatch it if a serving node has a free slot; else file it to
    wait for one."""
    nodes = _serving(job, ports.settings)
    slot = capacity.reserve(job.id, nodes) if nodes else None
    if slot is None:
        waiting = _busy_reason(job, nodes) if nodes else unserved_reason(job, ports.settings)
        job.awaiting_node = KIND
        job.status_reason = f"waiting: {waiting}"
        observability.logger().info("job waits for a build node", extra={"reason": waiting})
        return records.insert(job)
    job.slot = slot
    try:
        records.insert(job)
    except Exception:
        capacity.release(slot, job.id)
        raise
    return start(job, ports)


def start(job: JobModel, ports: Ports) -> JobModel:
    """Start the build execution of a job that holds a slot."""
    try:
        ports.workflows.start_build(job.id, job_message(job, ports).to_dict())
    except Exception as exc:  # the record must not claim a build that never started
        observability.logger().exception("could not start the build execution")
        reason = f"the build could not be started: {exc}"
        finish(job.id, "error", reason, FailureCode.NOT_STARTED)
        if isinstance(exc, DomainError):
            raise
        raise DomainError(reason) from exc
    observability.count("JobsStarted")
    observability.logger().info("build dispatched", extra={"arch": job.arch, "slot": job.slot})
    return job


def dispatch_waiting(
    ports: Ports, now: float | None = None, end_unserved: bool = True
) -> list[str]:
    """Dispatch waiting jobs, oldest first, that a node serves and has a free slot for; end
    those no node served for too long (unless not ``end_unserved``: right after a restart,
    before the nodes heartbeat again)."""
    now = now or time.time()
    settings = ports.settings
    registered = build_nodes.registered()  # read once per pass
    full: set[tuple[str, ...]] = set()  # node sets with no free slot left in this pass
    outcomes = []
    for job in list(JobModel.by_awaiting_node.query(KIND)):
        nodes = _serving(job, settings, registered)
        if nodes:
            serving = tuple(sorted(node.xname for node in nodes))
            slot = None if serving in full else capacity.reserve(job.id, nodes)
            if slot is None:
                full.add(serving)
                continue
            try:
                claimed = update(job.id, functools.partial(_claim, slot=slot))
            except AlreadyClaimed:
                capacity.release(slot, job.id)
                continue
            start(claimed, ports)
            outcomes.append(f"{job.id}: dispatched")
        elif end_unserved and now - records.epoch(job.created) >= settings.unserved_wait_seconds:
            waited = settings.unserved_wait_seconds
            reason = unserved_reason(job, settings) or "no build node"
            if finish(
                job.id,
                "error",
                f"no build node after {waited} s: {reason}",
                FailureCode.NO_BUILD_NODE,
            ):
                observability.count("JobsFailed")
                outcomes.append(f"{job.id}: ended, unserved")
    return outcomes


def report_waiting() -> list[str]:
    """``JobsAwaitingNode`` per arch (every arch, zeros too): the build capacity's scaling
    signal on AWS. Waiting jobs are kept out of the build queues, so queue depth cannot be."""
    waiting = dict.fromkeys(ARCHES, 0)
    for job in JobModel.by_awaiting_node.query(KIND):
        waiting[job.arch] = waiting.get(job.arch, 0) + 1
    for arch, count in waiting.items():
        observability.gauge("JobsAwaitingNode", count, arch=arch)
    return [f"{arch}: {count}" for arch, count in waiting.items()]


def _claim(job: JobModel, slot: str) -> None:
    if job.awaiting_node is None or job.status != "creating":
        raise AlreadyClaimed(job.id)
    job.awaiting_node = None
    job.status_reason = None
    job.slot = slot


def job_message(job: JobModel, ports: Ports) -> JobMessage:
    """What the state machine carries to the build host (the host never reads DynamoDB): the
    core's fields, then the job kind's."""
    core: dict[str, Any] = {
        "job_id": job.id,
        "kind": job.job_kind,
        "job_type": job.job_type,
        "tenant": job.tenant,
        "arch": job.arch,
        "recipe_type": job.recipe_type or "",
        "bucket": ports.artifacts.bucket,
        "image_id": job.planned_image_id,
        "artifact_prefix": image_prefix(job.planned_image_id),
        "log_key": job_log_key(job.id),
        "log_chunk_prefix": job_log_chunk_prefix(job.id),
        "cancel_key": job_cancel_key(job.id),
        "source_date_epoch": int(records.epoch(job.created)),
        # the build cache (docs/build-cache.md): the tenant's, unless a fresh build was asked
        "cache_prefix": build_cache.prefix_for(job),
        "use_cache": not job.fresh_build,
    }
    return JobMessage(**{**core, **job_kinds.kind(job.job_kind).message(job, ports)})
