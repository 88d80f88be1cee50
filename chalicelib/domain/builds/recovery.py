"""Builds after the local stack comes back on its data (infra/local/stack.py runs this once,
after provisioning and before any build host starts).

The stack keeps its tables, objects and queue messages; moto's Step Functions executions are
not kept, so every build that was running lost its execution, and with it its task token:

1. the build queues' messages carry task tokens nobody can answer any more: they are purged
   (only when no execution runs, so a token that still lives is never thrown away);
2. an unfinished job that holds a build slot and whose execution is gone is started again
   from its record (the execution's name, the job id, is free in the new moto), keeping its
   slot, its status reason saying why; a job that holds no slot and does not wait goes back to
   waiting for one; then the waiting jobs are dispatched as after any job's end (none is
   ended as unserved here: the nodes have not heartbeaten since the restart).

The build-events queue is left alone: a result a host sent before the stop is still handled
(a re-dispatched build's own result then finds the job ended). A host that was building a
job when the stack died is restarted with the stack; one that lived on answers its old token,
is refused (the token is unknown) and drops the job (builders/agent.py); the re-dispatched
execution's message is then built, or answered from the host's answer book.
"""

from __future__ import annotations

from typing import Any

from chalicelib import observability
from chalicelib.adapters.models import JobModel
from chalicelib.config import ARCHES, build_queue_name
from chalicelib.domain.builds import dispatch
from chalicelib.domain.builds.job_records import KIND, set_status, update
from chalicelib.domain.builds.kinds import Ports
from chalicelib.domain.states import JOB_TERMINAL
from chalicelib.errors import DomainError

REASON = "re-dispatched after the stack restarted"


def after_restart(ports: Ports, sqs: Any) -> list[str]:
    """Everything above, in order; one line per thing done."""
    lines = purge_build_queues(ports, sqs)
    lines += redispatch_orphans(ports)
    # none ended as unserved now: the nodes' last heartbeats are from before the stop
    lines += dispatch.dispatch_waiting(ports, end_unserved=False)
    return lines


#: every message a queue holds: waiting, received and not yet deleted, delayed
_COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


def purge_build_queues(ports: Ports, sqs: Any) -> list[str]:
    """Empty every build queue that holds messages, unless an execution runs (its token may
    be in one)."""
    if ports.workflows.any_running():
        return []
    lines = []
    for arch in ARCHES:
        name = build_queue_name(arch)
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except sqs.exceptions.QueueDoesNotExist:
            continue
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(_COUNTS))
        held = sum(int(value) for value in counts.get("Attributes", {}).values())
        if held:
            sqs.purge_queue(QueueUrl=url)
            lines.append(f"{name}: {held} message(s) purged (their task tokens died)")
    return lines


def redispatch_orphans(ports: Ports) -> list[str]:
    """Start again each unfinished job whose execution is gone (see the module's text)."""
    lines = []
    for job in list(JobModel.by_unfinished.query(KIND)):
        if job.awaiting_node or ports.workflows.execution_exists(job.id):
            continue  # waiting (dispatch_waiting's), or its build still runs
        line = _restart(job.id, ports) if job.slot else _wait_again(job.id)
        if line:
            lines.append(f"{job.id}: {line}")
    return lines


def _restart(job_id: str, ports: Ports) -> str | None:
    marked = {"value": False}

    def change(job: JobModel) -> None:
        marked["value"] = job.status not in JOB_TERMINAL and bool(job.slot)
        if marked["value"]:
            job.status_reason = REASON

    job = update(job_id, change)
    if not marked["value"]:
        return None
    try:
        dispatch.start(job, ports)
    except DomainError as exc:  # the job ended in error, with the reason (dispatch.start)
        return f"could not be re-dispatched: {exc}"
    observability.logger().warning(
        "build re-dispatched after the stack restarted", extra={"job_id": job_id}
    )
    return f"{REASON} (slot {job.slot})"


def _wait_again(job_id: str) -> str | None:
    filed = {"value": False}

    def change(job: JobModel) -> None:
        filed["value"] = not (job.status in JOB_TERMINAL or job.slot or job.awaiting_node)
        if filed["value"]:
            if job.status != "creating":  # dispatch_waiting claims only a job still creating
                set_status(job, "creating")
            job.awaiting_node = KIND
            job.status_reason = f"waiting: {REASON}"

    update(job_id, change)
    return f"waiting for a build slot again ({REASON})" if filed["value"] else None
