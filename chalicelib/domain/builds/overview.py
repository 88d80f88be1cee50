"""Every build a tenant ran, whichever face made it, as Kiln's own API shows them
(``/kiln/v1/builds``: docs/kiln-api.md; the ``kiln`` CLI and the console read it): one list
with filters, one build with its stages, artifacts and proofs, its log, and cancelling it.

A job's face, label and face record come from its kind (``JobKind.face``/``describe``): this
module never asks which face made a job."""

from __future__ import annotations

import dataclasses
import heapq
import posixpath
import time
from typing import Any

from pynamodb.expressions.condition import Condition

from chalicelib import observability
from chalicelib.adapters import records
from chalicelib.adapters.artifacts import job_cancel_key
from chalicelib.adapters.models import JobModel
from chalicelib.auth import Principal
from chalicelib.domain import job_kinds
from chalicelib.domain.builds import dispatch, logs
from chalicelib.domain.builds import results as build_results
from chalicelib.domain.builds.kinds import Ports
from chalicelib.domain.states import JOB_STATUSES, JOB_TERMINAL
from chalicelib.errors import BadRequest, Conflict, NotFound
from chalicelib.host_protocol import Failure, FailureCode, MediaType, Stage

FACES = ("ims", "composer", "cachito")
ARCHES = ("x86_64", "aarch64")
#: a job's status, as a person reads it: waiting for a host, on one, waiting for its user, ended
PHASES: dict[str, frozenset[str]] = {
    "queued": frozenset({"creating"}),
    "running": frozenset(JOB_STATUSES) - {"creating", "waiting_on_user"} - JOB_TERMINAL,
    "waiting_on_user": frozenset({"waiting_on_user"}),
    "success": frozenset({"success"}),
    "error": frozenset({"error"}),
}
LIMIT_DEFAULT, LIMIT_MAX = 50, 200
CANCELLED = "cancelled by its user"
SBOM_FORMATS = {MediaType.SBOM_CYCLONEDX: "cyclonedx-1.6", MediaType.SBOM_SPDX: "spdx-2.3"}


@dataclasses.dataclass(frozen=True)
class Filters:
    face: str | None = None
    status: str | None = None
    phase: str | None = None
    arch: str | None = None
    limit: int = LIMIT_DEFAULT
    marker: str | None = None

    @classmethod
    def of(cls, query: dict[str, str]) -> Filters:
        """The list's query parameters, checked: BadRequest names the one that is wrong."""
        unknown = sorted(set(query) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise BadRequest(f"unknown query parameter {unknown[0]!r}")
        for name, allowed in (
            ("face", FACES),
            ("status", JOB_STATUSES),
            ("phase", tuple(PHASES)),
            ("arch", ARCHES),
        ):
            if name in query and query[name] not in allowed:
                raise BadRequest(f"{name} must be one of {', '.join(allowed)}")
        limit = query.get("limit", str(LIMIT_DEFAULT))
        if not limit.isdigit() or not 1 <= int(limit) <= LIMIT_MAX:
            raise BadRequest(f"limit must be a whole number from 1 to {LIMIT_MAX}")
        fields = {k: v for k, v in query.items() if k not in ("limit",)}
        return cls(**fields, limit=int(limit))


def phase_of(status: str) -> str:
    return next((phase for phase, statuses in PHASES.items() if status in statuses), "running")


def summary(job: JobModel) -> dict[str, Any]:
    kind = job_kinds.REGISTRY.get(job.job_kind)
    described = kind.describe(job) if kind else None
    return {
        "id": job.id,
        "face": kind.face if kind else "kiln",
        "kind": job.job_kind,
        "name": described.label if described else job.job_kind,
        "status": job.status,
        "phase": phase_of(job.status),
        "status_reason": job.status_reason,
        "arch": job.arch,
        "tenant": job.tenant,
        "created": job.created,
        "finished": job.finished,
        "build_node": job.build_node,
        "face_url": described.face_path if described else "",
        "timing": job.timing,
    }


def record_kinds(face: str | None = None) -> list[str]:
    """The list partitions the faces file their jobs under (``face``: that face's only)."""
    kinds = job_kinds.REGISTRY.values()
    return sorted({k.record_kind for k in kinds if face is None or k.face == face})


def list_builds(principal: Principal, filters: Filters) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, a page at a time: ``marker`` is the last build of the page before. Each
    face's partition is read newest first from its index, and the reads are merged."""
    index = JobModel.by_kind if principal.sees_all_tenants else JobModel.by_tenant
    before = None
    if filters.marker is not None:
        marked = _visible(filters.marker, principal)
        before = marked.created_id
    reads = [
        index.query(  # type: ignore[attr-defined]
            kind if principal.sees_all_tenants else f"{principal.tenant}/{kind}",
            range_key_condition=None if before is None else JobModel.created_id < before,
            filter_condition=_condition(filters),
            scan_index_forward=False,
        )
        for kind in record_kinds(filters.face)
    ]
    page: list[dict[str, Any]] = []
    for job in heapq.merge(*reads, key=lambda job: job.created_id, reverse=True):
        if len(page) == filters.limit:
            return page, page[-1]["id"]
        page.append(summary(job))
    return page, None


def _condition(filters: Filters) -> Condition | None:
    conditions: list[Condition] = []
    if filters.status is not None:
        conditions.append(JobModel.status == filters.status)
    if filters.phase is not None:
        conditions.append(JobModel.status.is_in(*sorted(PHASES[filters.phase])))
    if filters.arch is not None:
        conditions.append(JobModel.arch == filters.arch)
    combined: Condition | None = None
    for condition in conditions:
        combined = condition if combined is None else combined & condition
    return combined


def _visible(job_id: str, principal: Principal) -> JobModel:
    job = records.find(JobModel, job_id)
    if job is None or job.kind not in record_kinds() or not principal.can_see(job.tenant):
        raise NotFound(f"build {job_id} not found")
    return job


def build(job_id: str, principal: Principal, ports: Ports) -> dict[str, Any]:
    """One build: its summary, stages, artifacts (presigned), SBOMs and provenance."""
    job = _visible(job_id, principal)
    store = ports.artifacts
    artifacts = [
        {
            "name": posixpath.basename(a["key"]),
            "type": a.get("type", ""),
            "size": a.get("size", 0),
            "sha256": a.get("sha256", ""),
            "download_url": store.presign_get(a["key"]),
        }
        for a in (job.artifacts or [])
        if job.status == "success" and a.get("key")
    ]
    by_type = {a["type"]: a["download_url"] for a in artifacts}
    sboms = {name: by_type[t] for t, name in SBOM_FORMATS.items() if t in by_type}
    kind = job_kinds.REGISTRY.get(job.job_kind)
    stages = (job.timing or {}).get("stages") or {}
    order = [s.value for s in Stage]
    return {
        **summary(job),
        "stages": [
            {"name": name, "seconds": stages[name]}
            for name in sorted(stages, key=lambda n: order.index(n) if n in order else len(order))
        ],
        "artifacts": artifacts,
        "sbom": sboms or None,
        "provenance": by_type.get(MediaType.PROVENANCE),
        "steps": steps(job),
        "image_id": kind.describe(job).image_id if kind else None,
        "log_url": f"/kiln/v1/builds/{job.id}/log",
    }


def steps(job: JobModel) -> list[dict[str, Any]]:
    """The statuses the job went through, each with when it began and its seconds (the last
    one's, while it lasts, up to now)."""
    walked = [("creating", job.created)] + [(s, at) for s, at in job.status_history or []]
    shown = []
    for index, (status, began) in enumerate(walked):
        ended = walked[index + 1][1] if index + 1 < len(walked) else None
        seconds = None  # an ended job's last status has no length
        if ended is not None or status not in JOB_TERMINAL:
            until = records.epoch(ended) if ended else time.time()
            seconds = round(max(0.0, until - records.epoch(began)), 3)
        shown.append({"status": status, "started": began, "seconds": seconds})
    return shown


def log(job_id: str, principal: Principal, offset: str | None, ports: Ports) -> dict[str, Any]:
    if offset is not None and not offset.isdigit():
        raise BadRequest("offset must be a whole number of bytes, 0 or more")
    part = logs.read(_visible(job_id, principal), ports.artifacts, int(offset or 0))
    return dataclasses.asdict(part)


def cancel(job_id: str, principal: Principal, ports: Ports) -> dict[str, Any]:
    """Ended as a host's Cancelled answer would end it (its face hears of it too); its host,
    if it has started, is told through the cancel marker it watches."""
    job = _visible(job_id, principal)
    if job.status in JOB_TERMINAL:
        raise Conflict(f"build {job_id} already ended in {job.status}")
    ports.artifacts.put_json(job_cancel_key(job.id), {"cancelled": records.utc_now()})
    build_results.failed(job.id, Failure(FailureCode.CANCELLED, CANCELLED), ports)
    observability.count("JobsCancelled")
    dispatch.dispatch_waiting(ports)  # its build slot is free
    return summary(_visible(job_id, principal))
