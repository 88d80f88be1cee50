"""Build node capacity: each node has ``slots`` (its heartbeat says how many jobs it runs at
once, one by default); a job is dispatched only once it holds one of them.

A slot is reserved by a conditional put (the slot's record must not exist), so two
dispatchers racing for the last slot cannot both win, and released by a conditional delete
naming the job that holds it. A job releases its slot when it ends (job_records.update), and
the schedule releases slots whose job has ended or is gone (a release lost to a crash).
Nothing here reads other jobs: a create costs one conditional write per slot it tries.
"""

from __future__ import annotations

from collections.abc import Iterable

from pynamodb.exceptions import DeleteError, PutError

from chalicelib.adapters import records
from chalicelib.adapters.models import BuildNodeModel, JobModel, NodeSlotModel
from chalicelib.domain.states import JOB_TERMINAL

KIND = "node-slot"


def slot_ids(node: BuildNodeModel) -> list[str]:
    return [f"{node.xname}#{index}" for index in range(max(1, int(node.slots or 1)))]


def reserve(job_id: str, nodes: Iterable[BuildNodeModel]) -> str | None:
    """The slot this call reserved for ``job_id`` on one of ``nodes``, or None if all are
    taken."""
    for node in nodes:
        for slot in slot_ids(node):
            record = NodeSlotModel(
                slot=slot,
                xname=node.xname,
                job_id=job_id,
                created_id=f"{records.utc_now()}#{slot}",
            )
            try:
                record.save(condition=NodeSlotModel.slot.does_not_exist())
            except PutError as exc:
                if records.lost_race(exc):
                    continue  # taken
                raise
            return slot
    return None


def release(slot: str, job_id: str) -> bool:
    """Free ``slot`` if ``job_id`` holds it. True if this call freed it."""
    try:
        NodeSlotModel(slot=slot, xname="", job_id=job_id, created_id="").delete(
            condition=NodeSlotModel.job_id == job_id
        )
    except DeleteError as exc:
        if records.lost_race(exc):
            return False  # already free, or another job's now
        raise
    return True


def held() -> list[NodeSlotModel]:
    return list(NodeSlotModel.by_kind.query(KIND))


def release_abandoned() -> list[str]:
    """Slots whose job has ended or no longer exists (the schedule's repair)."""
    freed = []
    for slot in held():
        job = records.find(JobModel, slot.job_id)
        if (job is None or job.status in JOB_TERMINAL) and release(slot.slot, slot.job_id):
            freed.append(f"{slot.slot}: freed from job {slot.job_id}")
    return freed
