"""What build hosts and the state machine report about a job: progress, SSH sessions, the
result. Late, repeated or out-of-order reports never move a job backwards. What a result
means beyond the job record is the job kind's (chalicelib/domain/job_kinds.py)."""

from __future__ import annotations

import time
from typing import Any

from chalicelib import observability
from chalicelib.adapters import records
from chalicelib.adapters.models import JobModel
from chalicelib.domain import job_kinds
from chalicelib.domain.builds import build_cache, provenance
from chalicelib.domain.builds import timing as timings
from chalicelib.domain.builds.job_records import KIND, finish, set_status, update
from chalicelib.domain.builds.kinds import Ports
from chalicelib.domain.states import JOB_TERMINAL, JOB_TRANSITIONS, can_move
from chalicelib.host_protocol import BuildOutput, Failure, FailureCode, Progress


def record_progress(progress: Progress, ports: Ports) -> str:
    """A host reported progress (and, for a shell, how to reach it; for an upload, how it
    goes)."""
    outcome = {"value": "unchanged"}

    def change(job: JobModel) -> None:
        if job.status in JOB_TERMINAL:
            return
        if progress.node:
            job.build_node = progress.node
        if progress.time and job.host_started is None:
            job.host_started = progress.time
        if progress.ssh_containers is not None:
            job.ssh_containers = list(progress.ssh_containers)
        if progress.upload_status is not None:
            job.upload_status = dict(progress.upload_status)
        status = progress.status
        if status != job.status and can_move(JOB_TRANSITIONS, job.status, status):
            set_status(job, status)
            outcome["value"] = status

    if records.find(JobModel, progress.job_id) is None:
        return "ignored: no such job"
    job = update(progress.job_id, change)
    more = job_kinds.kind(job.job_kind).progressed(job, progress, ports)
    return f"{outcome['value']}; {more}" if more else outcome["value"]


def succeeded(job_id: str, output: BuildOutput, ports: Ports) -> str:
    """The build host's result came back through the state machine: the job kind records
    what it means, then the job shows success."""
    job = records.find(JobModel, job_id)
    if job is None:
        return "ignored: no such job"
    kind = job_kinds.kind(job.job_kind)
    if job.status == "success":  # a replay, maybe after what follows success failed: again
        build_cache.record(job, output, ports)
        return f"unchanged: already success; {kind.announce_success(job, ports)}"
    if job.status in JOB_TERMINAL:
        return f"unchanged: already {job.status}"
    output = provenance.attest(job, output, ports)  # signed provenance joins the artifacts
    payload_changes = kind.record_success(job, output, ports)
    timing = timings.of_success(job, output, ports.settings)
    ended = finish(
        job_id,
        "success",
        None,
        payload={**(job.payload or {}), **payload_changes},
        build_log_key=output.log_key or None,
        build_node=output.node or job.build_node,
        host_answered=output.answered_at,
        ssh_containers=_closed(job.ssh_containers),
        artifacts=[vars(artifact) for artifact in output.artifacts],
        upload_status=output.upload_status or job.upload_status,
        timing=timing,
        cache=output.cache,
    )
    if not ended:
        return "unchanged: ended meanwhile"
    build_cache.record(job, output, ports)  # the entry, or the hit's hold (docs/build-cache.md)
    observability.count("JobsSucceeded")
    timings.emit(timing, job.arch)
    observability.seconds("BuildSeconds", float(output.build_seconds or 0))
    done = records.find(JobModel, job_id)
    more = kind.announce_success(done, ports) if done is not None else ""
    return f"success; {more}" if more else "success"


def _closed(containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**c, "status": "complete"} for c in containers or []]


def failed(job_id: str, failure: Failure, ports: Ports) -> str:
    job = records.find(JobModel, job_id)
    if job is None:
        return "ignored: no such job"
    if job.status in JOB_TERMINAL:
        return f"unchanged: already {job.status}"
    if not finish(
        job_id,
        "error",
        failure.reason,
        failure.code,
        ssh_containers=_closed(job.ssh_containers),
        timing=timings.of_failure(job, time.time(), ports.settings),
    ):
        return "unchanged: ended meanwhile"
    observability.count("JobsFailed")
    more = job_kinds.kind(job.job_kind).failed(job, failure, ports)
    return f"error; {more}" if more else "error"


def end_stale(older_than_seconds: float, ports: Ports) -> list[str]:
    """End unfinished jobs that got no result in time (the schedule's backstop)."""
    reason = f"no result after {older_than_seconds:g} s; the build was abandoned"
    failure = Failure(FailureCode.HOST_SILENT, reason)
    return [f"{job.id}: {failed(job.id, failure, ports)}" for job in stale_jobs(older_than_seconds)]


def stale_jobs(older_than_seconds: float, now: float | None = None) -> list[JobModel]:
    """Unfinished jobs created before the cutoff, oldest first (from the sparse index)."""
    cutoff = (now or time.time()) - older_than_seconds
    stale = []
    for job in JobModel.by_unfinished.query(KIND):
        if records.epoch(job.created) > cutoff:
            break
        stale.append(job)
    return stale
