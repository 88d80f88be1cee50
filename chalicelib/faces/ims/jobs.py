"""IMS jobs: /jobs."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.auth import Principal
from chalicelib.container import container
from chalicelib.domain.ims import job_removal
from chalicelib.domain.ims import jobs as ims_jobs
from chalicelib.faces.ims import views
from chalicelib.faces.ims.routing import Query, ims_route

bp = Blueprint(__name__)


@ims_route(bp, "/jobs", ["GET"])
def list_jobs(principal: Principal, _body: Any) -> list[dict[str, Any]]:
    return [views.job(j) for j in ims_jobs.list_for(principal)]


@ims_route(bp, "/jobs", ["POST"], status=201)
def create_job(principal: Principal, body: Any) -> dict[str, Any]:
    box = container()
    job = ims_jobs.create(principal, body, box)
    return views.job(job)


@ims_route(bp, "/jobs/{job_id}", ["GET"])
def get_job(principal: Principal, _body: Any, job_id: str) -> dict[str, Any]:
    return views.job(ims_jobs.get(principal, job_id))


@ims_route(bp, "/jobs/{job_id}", ["PATCH"])
def patch_job(principal: Principal, body: Any, job_id: str) -> dict[str, Any]:
    return views.job(ims_jobs.patch(principal, job_id, body))


@ims_route(bp, "/jobs/{job_id}/log", ["GET"])
def get_job_log(principal: Principal, _body: Any, job_id: str) -> Response:
    text = ims_jobs.build_log(principal, job_id, container().artifacts)
    return Response(body=text, status_code=200, headers={"Content-Type": "text/plain"})


@ims_route(bp, "/jobs/{job_id}", ["DELETE"], status=204)
def delete_job(principal: Principal, _body: Any, job_id: str) -> None:
    """A finished job is removed; an unfinished one is cancelled (it ends in error)."""
    job_removal.delete(principal, job_id, container().artifacts)


@ims_route(bp, "/jobs", ["DELETE"], status=204, query=True)
def delete_jobs(principal: Principal, _body: Any, query: Query) -> None:
    job_removal.delete_all(principal, query, container().artifacts)
