"""Cancelling a job, whichever face asks: the host is told first (it watches for the cancel
marker in S3 and answers ``Cancelled``), then the record ends in ``error`` (Cancelled),
which frees its build slot."""

from __future__ import annotations

from chalicelib import observability
from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore, job_cancel_key
from chalicelib.adapters.models import JobModel
from chalicelib.domain.builds.job_records import finish
from chalicelib.host_protocol import FailureCode


def cancel(job: JobModel, store: ArtifactStore, reason: str) -> str:
    store.put_json(job_cancel_key(job.id), {"cancelled": records.utc_now()})
    finish(job.id, "error", reason, FailureCode.CANCELLED, cancelled=True)
    observability.count("JobsCancelled")
    return "cancelled"
