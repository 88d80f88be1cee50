"""The ``ims-rebuild-check`` job kind (docs/reproducibility.md) and the image's check state,
``ImageModel.reproducibility``; the routes' use cases are in reproducibility.py.

The check job's message is the original job's, through the original kind's message hook (the
same recipe archive and sha256, template dictionary, SOURCE_DATE_EPOCH, arch, recipe type and
file names), plus ``compare_with`` and the build cache off: the host builds it again and
compares (builders/compare.py), publishing nothing. The job's record is filed under its own
list partition (``rebuild-check-job``), so IMS's job lists never show it: the check belongs
to the image.

The state: ``pending`` (asked for) → ``running`` (a host reported) → ``reproducible`` |
``not_reproducible`` | ``inputs_changed`` | ``error`` (with a ``reason``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import time
from collections.abc import Callable
from typing import Any

from chalicelib.adapters import records
from chalicelib.adapters.models import ImageModel, JobModel
from chalicelib.domain.builds.kinds import Description, JobKind, Ports
from chalicelib.domain.ims.job_kinds import REBUILD_CHECK_KIND
from chalicelib.errors import Conflict, NotFound
from chalicelib.host_protocol import BuildOutput, Failure, MediaType, Progress

JOB_RECORD_KIND = "rebuild-check-job"  # its own list partition: IMS job lists never show it
PENDING, RUNNING, ERROR = "pending", "running", "error"
IN_FLIGHT = (PENDING, RUNNING)
VERDICTS = ("reproducible", "not_reproducible", "inputs_changed")
NOT_COMPARED = (MediaType.BUILD_LOG, MediaType.PROVENANCE)  # they name the job, not the build
RESULT_MAX = 48 * 1024  # characters of the stored result (diffoscope's reports cut first)
ORPHAN_SECONDS = 60  # a pending check whose job record is still missing after this is dead
FIELDS = (
    "status",
    "job_id",
    "requested",
    "started",
    "finished",
    "original_job_id",
    "original_node",
    "rebuild_node",
    "reason",
    "result",
)


@dataclasses.dataclass
class CheckJob:
    """The check job's payload (only the rebuild checks' code reads it)."""

    image_id: str
    original_job_id: str
    avoid_node: str | None = None  # dispatch.AVOID_NODE: the original build node

    @classmethod
    def of(cls, job: JobModel) -> CheckJob:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (job.payload or {}).items() if k in fields})


def shown(image: ImageModel) -> dict[str, Any] | None:
    """The image's ``reproducibility`` as the API shows it (None: never checked). A check
    whose job ended without telling the image (no node served it for too long, its
    execution never started) shows that job's end."""
    state = image.reproducibility
    if not isinstance(state, dict):
        return None
    found = {**dict.fromkeys(FIELDS), **state}
    if found["status"] not in IN_FLIGHT:
        return found
    job = records.find(JobModel, found["job_id"] or "")
    if job is None:
        age = time.time() - records.epoch(found["requested"] or records.utc_now())
        gone = age > ORPHAN_SECONDS
        return {**found, "status": ERROR, "reason": "the check's job is gone"} if gone else found
    if job.status == ERROR:
        reason = job.status_reason or "the check's job failed"
        return {**found, "status": ERROR, "reason": reason, "finished": job.finished}
    return found


def compared_artifacts(original: JobModel) -> list[dict[str, Any]]:
    """The original job's artifacts the host compares ({key, type, size, sha256})."""
    return [
        {name: artifact.get(name) for name in ("key", "type", "size", "sha256")}
        for artifact in original.artifacts or []
        if isinstance(artifact, dict) and artifact.get("type") not in NOT_COMPARED
    ]


def load(image_id: str) -> ImageModel:
    image = records.find(ImageModel, image_id)
    if image is None:
        raise NotFound(f"image {image_id} not found")
    return image


def settle(image_id: str, job_id: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Change the image's check state, if the image is still there and its check is this
    job's (a newer check is never overwritten by an older one's report)."""
    image = records.find(ImageModel, image_id)
    if image is None or (image.reproducibility or {}).get("job_id") != job_id:
        return

    def apply(current: ImageModel) -> None:
        state = dict(current.reproducibility or {})
        if state.get("job_id") == job_id:
            change(state)
            current.reproducibility = state

    records.change_versioned(lambda: load(image_id), apply, f"image {image_id}")


def ended(
    status: str, reason: str | None = None, **fields: Any
) -> Callable[[dict[str, Any]], None]:
    def change(state: dict[str, Any]) -> None:
        if state.get("status") in IN_FLIGHT:  # a replayed or late result changes nothing
            state.update(status=status, reason=reason, finished=records.utc_now(), **fields)

    return change


# --- the job kind ----------------------------------------------------------------------------


def _message(job: JobModel, ports: Ports) -> dict[str, Any]:
    """The original job's message, through its own kind, plus what makes it a check."""
    from chalicelib.domain import job_kinds  # the registry imports this module

    check = CheckJob.of(job)
    original = records.find(JobModel, check.original_job_id)
    if original is None:
        raise Conflict(f"the job that built image {check.image_id} is gone")
    message = job_kinds.kind(original.job_kind).message(original, ports)
    if not message.get("recipe"):
        raise Conflict(f"the recipe image {check.image_id} was built from is gone")
    message.setdefault("source_date_epoch", int(records.epoch(original.created)))
    planned = (job.slot or "").split("#")[0]
    moved = bool(planned and original.build_node and planned != original.build_node)
    message.update(
        enable_debug=False,
        public_key="",
        ssh_containers=[],
        upload=None,
        use_cache=False,  # really build, and leave the build cache alone
        cache_prefix="",
        compare_with={
            "image_id": check.image_id,
            "node": original.build_node,
            # Kiln reserved another node's slot: the original's node should leave it to it
            "avoid_node": original.build_node if moved else None,
            "artifacts": compared_artifacts(original),
        },
    )
    return message


def _progressed(job: JobModel, progress: Progress, _ports: Ports) -> str:
    def change(state: dict[str, Any]) -> None:
        if state.get("status") == PENDING:
            started = progress.time or time.time()
            state.update(status=RUNNING, started=_iso(started), rebuild_node=progress.node)

    image_id = CheckJob.of(job).image_id
    image = records.find(ImageModel, image_id)
    if image is not None and (image.reproducibility or {}).get("status") == PENDING:
        settle(image_id, job.id, change)
    return ""


def _record_success(job: JobModel, output: BuildOutput, _ports: Ports) -> dict[str, Any]:
    image_id = CheckJob.of(job).image_id
    comparison = output.comparison
    node = output.node or job.build_node
    if not isinstance(comparison, dict) or comparison.get("verdict") not in VERDICTS:
        reason = f"build host {node} did not compare the rebuild (does it know rebuild checks?)"
        settle(image_id, job.id, ended(ERROR, reason, rebuild_node=node))
        return {"verdict": ERROR}
    original = comparison.get("original_node")
    result = {**comparison, "rebuild_node": node, "same_node": bool(node and node == original)}
    result["summary"] = f"{_nodes(original, node)} {comparison.get('summary') or ''}".strip()
    verdict = str(comparison["verdict"])
    settle(image_id, job.id, ended(verdict, None, rebuild_node=node, result=bounded(result)))
    return {"verdict": verdict}


def _failed(job: JobModel, failure: Failure, _ports: Ports) -> str:
    image_id = CheckJob.of(job).image_id
    settle(image_id, job.id, ended(ERROR, failure.reason))
    return f"image {image_id}: rebuild check error"


def _nodes(original: str | None, rebuild: str | None) -> str:
    if not original:
        return f"Rebuilt on {rebuild} (the original's build node is not known)."
    if original == rebuild:
        return f"Rebuilt on {rebuild}, the node that built the original (no other was used)."
    return f"Rebuilt on {rebuild}; the original was built on {original}."


def bounded(result: dict[str, Any]) -> dict[str, Any]:
    """The result cut to fit the image record: diffoscope's reports first, then the rows
    (the differing ones kept longest), then the reports altogether."""
    if len(json.dumps(result)) <= RESULT_MAX:
        return result
    reports = result.get("diffoscope") or {}
    cut = {name: str(text)[:1024] + "\n[... cut]" for name, text in reports.items()}
    result = {**result, "diffoscope": cut}
    rows = sorted(result.get("artifacts") or [], key=lambda row: bool(row.get("identical")))
    while rows and len(json.dumps(result)) > RESULT_MAX:
        rows = rows[: len(rows) // 2]
        result.update(artifacts=rows, artifacts_cut=True)
    if len(json.dumps(result)) > RESULT_MAX:
        result["diffoscope"] = dict.fromkeys(reports, "[cut: the result was too long to keep]")
    return result


def _iso(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _describe(job: JobModel) -> Description:
    image_id = CheckJob.of(job).image_id
    return Description(
        f"rebuild check of {image_id}", f"/apis/ims/v3/images/{image_id}/rebuild-check"
    )


REBUILD_CHECK = JobKind(
    REBUILD_CHECK_KIND,
    _message,
    record_success=_record_success,
    failed=_failed,
    progressed=_progressed,
    face="ims",
    record_kind=JOB_RECORD_KIND,
    describe=_describe,
)
KINDS = (REBUILD_CHECK,)
