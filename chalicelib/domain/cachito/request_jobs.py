"""Starting a stored Cachito request: its job on the build core (job_kinds.py says what the
job's events mean to the request)."""

from __future__ import annotations

import dataclasses
import functools

from chalicelib import observability
from chalicelib.adapters import records
from chalicelib.adapters.artifacts import job_log_key
from chalicelib.adapters.cachito_models import CachitoRequestModel
from chalicelib.adapters.models import JobModel
from chalicelib.domain.builds import dispatch
from chalicelib.domain.builds.job_records import KIND as JOB_INDEX_KIND
from chalicelib.domain.builds.kinds import Ports
from chalicelib.domain.cachito import request_records
from chalicelib.domain.cachito.job_kinds import (
    JOB_RECORD_KIND,
    JOB_TYPE,
    REQUEST_KIND,
    CachitoJob,
)

SCHEDULE_FAILED = "Failed to schedule the task to the workers. Please try again."


def begin_request(request: CachitoRequestModel, ports: Ports) -> None:
    """Make and dispatch the job of a stored request. Never raises: a job that cannot start
    fails the request (its POST has been answered 201 already)."""
    job = JobModel(
        status="creating",
        job_kind=REQUEST_KIND,
        payload=dataclasses.asdict(CachitoJob(int(request.id))),
        job_type=JOB_TYPE,
        arch=ports.settings.cachito_arch,
        recipe_type=None,
        planned_image_id=f"cachito-{request.id}",
        unfinished=JOB_INDEX_KIND,
        request={  # the request as sent (dependency_replacements without their secrets)
            "repo": request.repo,
            "ref": request.ref,
            "pkg_managers": list(request.pkg_managers or []),
            "packages": dict(request.packages_spec or {}),
            "flags": list(request.flags or []),
        },
    )
    records.stamp(job, request.tenant, JOB_RECORD_KIND)
    try:
        request_records.change(int(request.id), functools.partial(_attach, job=job))
        dispatch.begin(job, ports)
    except Exception as exc:  # the request is stored and answered: it fails, visibly
        observability.logger().exception("could not start a Cachito request")
        request_records.fail(
            int(request.id),
            SCHEDULE_FAILED,
            "server",
            "WorkerUnavailable",
        )
        observability.logger().info("request failed at start", extra={"error": str(exc)})


def _attach(request: CachitoRequestModel, job: JobModel) -> None:
    request.job_id = job.id
    request.log_key = job_log_key(job.id)
