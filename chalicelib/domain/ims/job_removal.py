"""DELETE of jobs: a finished job's record and log go; an unfinished job is cancelled (its
host stops and answers with a failure; the record ends in ``error``, reason cancelled)."""

from __future__ import annotations

import re
import time

from pynamodb.exceptions import DeleteError

from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore, job_cancel_key, job_log_key
from chalicelib.adapters.models import JobModel
from chalicelib.auth import Principal
from chalicelib.domain.builds import cancel as build_cancel
from chalicelib.domain.ims.jobs import JOB_TYPES, get, list_for
from chalicelib.domain.states import JOB_STATUSES, JOB_TERMINAL
from chalicelib.errors import Invalid

CANCELLED = "cancelled: the job was deleted before it finished"
_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def delete(principal: Principal, job_id: str, store: ArtifactStore) -> str:
    return _remove(get(principal, job_id), store)


def delete_all(
    principal: Principal, query: dict[str, list[str]], store: ArtifactStore
) -> list[str]:
    """DELETE /jobs?status=..&job_type=..&age=1d: each matching job is removed or cancelled."""
    statuses = _values(query, "status", JOB_STATUSES)
    job_types = _values(query, "job_type", JOB_TYPES)
    age = parse_age(query["age"][-1]) if query.get("age") else None
    now = time.time()
    chosen = [
        job
        for job in list_for(principal)
        if (not statuses or job.status in statuses)
        and (not job_types or job.job_type in job_types)
        and (age is None or now - records.epoch(job.created) >= age)
    ]
    return [f"{job.id}: {_remove(job, store)}" for job in chosen]


def _values(query: dict[str, list[str]], name: str, allowed: tuple[str, ...]) -> set[str]:
    values = {v for item in query.get(name, []) for v in item.split(",") if v}
    wrong = sorted(values - set(allowed))
    if wrong:
        raise Invalid(
            f"unknown {name} value(s): {', '.join(wrong)}",
            {name: [f"Must be among: {', '.join(allowed)}."]},
        )
    return values


def parse_age(text: str) -> int:
    """'1d', '6h', '30m', '45s', '2w' -> seconds."""
    match = _AGE.match(text)
    if not match:
        raise Invalid(
            f"age '{text}' is not a duration like '1d' or '6h'",
            {"age": ["A number followed by s, m, h, d or w, e.g. 1d or 6h."]},
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _remove(job: JobModel, store: ArtifactStore) -> str:
    if job.status not in JOB_TERMINAL:
        return cancel(job, store)
    for key in (job_log_key(job.id), job_cancel_key(job.id)):
        store.delete(key)
    try:
        job.delete()
    except DeleteError as exc:  # changed meanwhile: read it again and decide again
        if not records.lost_race(exc):
            raise
        fresh = records.find(JobModel, job.id)
        return _remove(fresh, store) if fresh is not None else "deleted"
    return "deleted"


def cancel(job: JobModel, store: ArtifactStore) -> str:
    return build_cancel.cancel(job, store, CANCELLED)
