"""The one place a job record's status changes, and the versioned read-change-save loop. A job
that ends gives back the build slot it held."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.adapters import records
from chalicelib.adapters.models import JobModel
from chalicelib.domain.builds import capacity
from chalicelib.domain.states import JOB_TERMINAL
from chalicelib.errors import NotFound
from chalicelib.host_protocol import FailureCode

KIND = "job"  # the sparse indexes' partition: every job, whichever face made it


def set_status(job: JobModel, status: str) -> None:
    """An ended job leaves the unfinished and awaiting-node indexes. Each new status is kept
    with when it began (``status_history``: the steps Kiln's builds API shows while it runs)."""
    if status != job.status:
        job.status_history = [*(job.status_history or []), [status, records.utc_now()]]
    job.status = status
    if status in JOB_TERMINAL:
        job.unfinished = None
        job.awaiting_node = None
        job.finished = job.finished or records.utc_now()


def update(job_id: str, change: Callable[[JobModel], None]) -> JobModel:
    """Read, change, save with the version check; re-read and retry if another writer won.
    Once the job has ended, its build slot is freed."""

    def load() -> JobModel:
        job = records.find(JobModel, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        return job

    job = records.change_versioned(load, change, f"job {job_id}")
    if job.status in JOB_TERMINAL and job.slot:
        capacity.release(job.slot, job.id)
    return job


def finish(
    job_id: str,
    status: str,
    reason: str | None,
    code: FailureCode | None = None,
    **fields: Any,
) -> bool:
    """End a job, once: an ended job keeps its first ending. True if this call ended it.
    ``code``: why it failed, for the faces (host_protocol.FailureCode)."""
    ended = {"by_me": False}

    def change(job: JobModel) -> None:
        ended["by_me"] = False
        if job.status in JOB_TERMINAL:
            return
        ended["by_me"] = True
        set_status(job, status)
        job.status_reason = reason
        job.failure_code = code.name if code is not None else None
        for name, value in fields.items():
            setattr(job, name, value)

    update(job_id, change)
    return ended["by_me"]


def fail_new(job: JobModel, code: FailureCode, reason: str) -> None:
    """A job that ends before it is stored (refused at once): error, with its reason."""
    set_status(job, "error")
    job.status_reason = reason
    job.failure_code = code.name
