"""What build hosts and the state machine report about a job: progress, SSH sessions, the
result. Late, repeated or out-of-order reports never move a job backwards."""

from __future__ import annotations

import datetime
import time
from typing import Any

from chalicelib import observability
from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore, manifest_key
from chalicelib.adapters.models import JobModel
from chalicelib.domain.builds.job_records import KIND, finish, set_status, update
from chalicelib.domain.ims import images
from chalicelib.domain.states import JOB_TERMINAL, JOB_TRANSITIONS, can_move


def record_progress(
    job_id: str,
    status: str,
    node: str | None,
    at: float | None,
    ssh_containers: list[dict[str, Any]] | None = None,
    upload_status: dict[str, Any] | None = None,
) -> str:
    """A host reported progress (and, for a shell, how to reach it; for an upload, how it
    goes)."""
    outcome = {"value": "unchanged"}

    def change(job: JobModel) -> None:
        if job.status in JOB_TERMINAL:
            return
        if node:
            job.build_node = node
        if at and job.host_started is None:
            job.host_started = at
        if ssh_containers is not None:
            job.ssh_containers = ssh_containers
        if upload_status is not None:
            job.upload_status = upload_status
        if status != job.status and can_move(JOB_TRANSITIONS, job.status, status):
            set_status(job, status)
            outcome["value"] = status

    if records.find(JobModel, job_id) is None:
        return "ignored: no such job"
    update(job_id, change)
    return outcome["value"]


def succeeded(job_id: str, output: dict[str, Any], store: ArtifactStore) -> str:
    """The build host's result came back through the state machine: record the image."""
    job = records.find(JobModel, job_id)
    if job is None:
        return "ignored: no such job"
    if job.status in JOB_TERMINAL:
        return f"unchanged: already {job.status}"
    image_id = job.planned_image_id
    manifest = output.get("manifest", {})
    link = {
        "path": store.url(manifest_key(image_id)),
        "etag": str(manifest.get("etag", "")),
        "type": "s3",
    }
    images.record_build(image_id, job.tenant, job.image_root_archive_name, job.arch, link, job.id)
    finish(
        job_id,
        "success",
        None,
        resultant_image_id=image_id,
        build_log_key=output.get("log_key"),
        build_node=output.get("node") or job.build_node,
        host_answered=output.get("answered_at"),
        ssh_containers=_closed(job.ssh_containers),
        artifacts=output.get("artifacts"),
        upload_status=output.get("upload_status") or job.upload_status,
    )
    observability.count("JobsSucceeded")
    observability.seconds("BuildSeconds", float(output.get("build_seconds", 0)))
    return "success"


def _closed(containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**c, "status": "complete"} for c in containers or []]


def failed(job_id: str, error: str, cause: str | None = None) -> str:
    job = records.find(JobModel, job_id)
    if job is None:
        return "ignored: no such job"
    if job.status in JOB_TERMINAL:
        return f"unchanged: already {job.status}"
    finish(
        job_id, "error", describe_failure(error, cause), ssh_containers=_closed(job.ssh_containers)
    )
    observability.count("JobsFailed")
    return "error"


def describe_failure(error: str, cause: str | None) -> str:
    if error in ("States.Timeout", "States.HeartbeatTimeout"):
        return "the build host went silent (no heartbeat) twice; the build was abandoned"
    return f"{error}: {cause}" if cause else error


def epoch(created: str) -> float:
    return datetime.datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()


def stale_jobs(older_than_seconds: float, now: float | None = None) -> list[JobModel]:
    """Unfinished jobs created before the cutoff, oldest first (from the sparse index)."""
    cutoff = (now or time.time()) - older_than_seconds
    stale = []
    for job in JobModel.by_unfinished.query(KIND):
        if epoch(job.created) > cutoff:
            break
        stale.append(job)
    return stale
