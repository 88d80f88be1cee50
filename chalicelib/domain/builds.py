"""Build jobs: create and dispatch, then record what the build host and state machine report."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable
from typing import Any

from pynamodb.exceptions import PutError

from chalicelib import observability
from chalicelib.adapters import records
from chalicelib.adapters.artifacts import (
    ArtifactStore,
    image_prefix,
    job_log_key,
    manifest_key,
)
from chalicelib.adapters.models import JobModel, PublicKeyModel, RecipeModel
from chalicelib.adapters.workflows import Workflows
from chalicelib.auth import Principal
from chalicelib.config import Settings
from chalicelib.domain import build_nodes, images
from chalicelib.domain.states import (
    JOB_STATUSES,
    JOB_TERMINAL,
    JOB_TRANSITIONS,
    can_move,
    check_move,
)
from chalicelib.domain.validation import BodyCheck, require_object
from chalicelib.errors import Conflict, Invalid, NotFound

KIND = "job"
JOB_TYPES = ("create", "customize")
CREATE_FIELDS = (
    "job_type",
    "artifact_id",
    "public_key_id",
    "image_root_archive_name",
    "kernel_file_name",
    "initrd_file_name",
    "kernel_parameters_file_name",
    "enable_debug",
    "build_env_size",
    "require_dkms",
)
READ_ONLY = (
    "id",
    "created",
    "status",
    "kubernetes_job",
    "kubernetes_service",
    "kubernetes_configmap",
    "kubernetes_namespace",
    "resultant_image_id",
    "arch",
    "ssh_containers",
)


def create(
    principal: Principal,
    body: Any,
    store: ArtifactStore,
    workflows: Workflows,
    settings: Settings,
) -> JobModel:
    """Store the job and start its build; a job no healthy host can build ends at once."""
    job = _job_from_body(body)
    recipe = _usable_inputs(job, principal)
    job.arch, job.recipe_type = recipe.arch, recipe.recipe_type
    job.require_dkms = job.require_dkms or recipe.require_dkms
    job.planned_image_id = str(uuid.uuid4())
    job.unfinished = KIND
    records.stamp(job, principal.tenant, KIND)
    unserved = _unserved_reason(job, settings)
    if unserved:
        _set_status(job, "error")
        job.status_reason = unserved
        observability.count("JobsFailed")
        return records.insert(job)
    records.insert(job)
    observability.correlate(job.id)
    try:
        workflows.start_build(job.id, build_input(job, recipe, store))
    except Exception as exc:  # the record must not claim a build that never started
        observability.logger().exception("could not start the build execution")
        _finish(job.id, "error", f"the build could not be started: {exc}")
        raise
    observability.count("JobsStarted")
    observability.logger().info("build dispatched", extra={"arch": job.arch})
    return job


def _job_from_body(body: Any) -> JobModel:
    check = BodyCheck(require_object(body), known=CREATE_FIELDS, read_only=READ_ONLY)
    job = JobModel(status="creating")
    job.job_type = check.choice("job_type", JOB_TYPES, required=True)
    job.artifact_id = check.uuid("artifact_id", required=True)
    job.public_key_id = check.uuid("public_key_id", required=True)
    job.image_root_archive_name = check.string("image_root_archive_name", True, min_len=1)
    job.kernel_file_name = check.string("kernel_file_name", min_len=1) or "vmlinuz"
    job.initrd_file_name = check.string("initrd_file_name", min_len=1) or "initrd"
    job.kernel_parameters_file_name = (
        check.string("kernel_parameters_file_name", min_len=1) or "kernel-parameters"
    )
    job.enable_debug = bool(check.boolean("enable_debug"))
    job.build_env_size = check.integer("build_env_size", minimum=1) or 15
    job.require_dkms = bool(check.boolean("require_dkms"))
    check.done()
    if job.job_type == "customize":
        raise Invalid(
            "customize jobs are not available yet; use job_type 'create'",
            {"job_type": ["Only 'create' is supported."]},
        )
    return job


def _usable_inputs(job: JobModel, principal: Principal) -> RecipeModel:
    """The job's recipe, once its key and recipe are the caller's and the archive is ready."""
    if _visible(PublicKeyModel, job.public_key_id, principal) is None:
        raise Invalid(
            f"public key {job.public_key_id} not found", {"public_key_id": ["No such public key."]}
        )
    recipe = _visible(RecipeModel, job.artifact_id, principal)
    if recipe is None:
        raise Invalid(f"recipe {job.artifact_id} not found", {"artifact_id": ["No such recipe."]})
    if recipe.archive_status != "ready" or not recipe.link:
        reason = recipe.archive_reason or "upload its archive first"
        raise Invalid(
            f"recipe {recipe.id} has no usable archive ({recipe.archive_status}): {reason}",
            {"artifact_id": [f"Recipe archive is {recipe.archive_status}."]},
        )
    return recipe  # type: ignore[no-any-return]


def _visible(model: Any, record_id: str, principal: Principal) -> Any:
    record = records.find(model, record_id)
    return record if record is not None and principal.can_see(record.tenant) else None


def _unserved_reason(job: JobModel, settings: Settings) -> str | None:
    if build_nodes.serving(job.arch, job.recipe_type or "", settings.node_fresh_seconds):
        return None
    offered = build_nodes.capabilities(settings.node_fresh_seconds) or ["none"]
    return (
        f"no build host can build recipe type '{job.recipe_type}' for arch '{job.arch}'; "
        f"healthy hosts offer: {', '.join(offered)}"
    )


def _epoch(created: str) -> int:
    return int(datetime.datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())


def build_input(job: JobModel, recipe: RecipeModel, store: ArtifactStore) -> dict[str, Any]:
    """What the state machine carries to the build host (the host never reads DynamoDB)."""
    return {
        "job_id": job.id,
        "tenant": job.tenant,
        "arch": job.arch,
        "recipe_type": job.recipe_type,
        "recipe": {
            "bucket": store.bucket,
            "key": store.key_of(recipe.link["path"]) if recipe.link else "",
            "sha256": recipe.archive_sha256,
        },
        "bucket": store.bucket,
        "image_id": job.planned_image_id,
        "artifact_prefix": image_prefix(job.planned_image_id),
        "log_key": job_log_key(job.id),
        "image_root_archive_name": job.image_root_archive_name,
        "kernel_file_name": job.kernel_file_name,
        "initrd_file_name": job.initrd_file_name,
        "template_dictionary": {i["key"]: i["value"] for i in recipe.template_dictionary},
        "source_date_epoch": _epoch(recipe.created),
        "enable_debug": job.enable_debug,
    }


def get(principal: Principal, job_id: str) -> JobModel:
    return records.get_visible(JobModel, job_id, principal, "job")


def build_log(principal: Principal, job_id: str, store: ArtifactStore) -> str:
    """The build host's log of the job (written when the job ends, success or failure)."""
    job = get(principal, job_id)
    key = job_log_key(job.id)
    if store.head(key) is None:
        raise NotFound(f"job {job_id} has no build log yet (status {job.status})")
    return store.read(key).decode("utf-8", errors="replace")


def list_for(principal: Principal) -> list[JobModel]:
    return records.list_visible(JobModel, principal, KIND)


def patch(principal: Principal, job_id: str, body: Any) -> JobModel:
    """IMS's internal PATCH: only the worker role moves a job."""
    principal.require_role("worker")
    get(principal, job_id)
    check = BodyCheck(require_object(body), known=("status", "resultant_image_id"))
    status = check.choice("status", JOB_STATUSES)
    resultant = check.uuid("resultant_image_id")
    check.done()

    def change(job: JobModel) -> None:
        if status is not None and status != job.status:
            check_move(JOB_TRANSITIONS, "job", job.status, status)
            _set_status(job, status)
        if resultant is not None:
            job.resultant_image_id = resultant

    return _update(job_id, change)


def _set_status(job: JobModel, status: str) -> None:
    """The one place a job's status changes; an ended job leaves the unfinished index."""
    job.status = status
    if status in JOB_TERMINAL:
        job.unfinished = None
        job.finished = job.finished or records.utc_now()


def _update(job_id: str, change: Callable[[JobModel], None]) -> JobModel:
    """Read, change, save with the version check; re-read and retry if another writer won."""
    for _attempt in range(8):
        job = records.find(JobModel, job_id)
        if job is None:
            raise Invalid(f"job {job_id} not found")
        change(job)
        try:
            job.save()
            return job
        except PutError as exc:
            if "ConditionalCheckFailed" not in str(exc):
                raise
    raise Conflict(f"job {job_id} kept changing; retry")


def record_progress(job_id: str, status: str, node: str | None, at: float | None) -> str:
    """A host reported progress. Late or repeated reports change nothing."""
    outcome = {"value": "unchanged"}

    def change(job: JobModel) -> None:
        if node:
            job.build_node = node
        if at and job.host_started is None:
            job.host_started = at
        if status != job.status and can_move(JOB_TRANSITIONS, job.status, status):
            _set_status(job, status)
            outcome["value"] = status

    if records.find(JobModel, job_id) is None:
        return "ignored: no such job"
    _update(job_id, change)
    return outcome["value"]


def _finish(job_id: str, status: str, reason: str | None, **fields: Any) -> JobModel:
    def change(job: JobModel) -> None:
        if job.status in JOB_TERMINAL:
            return
        _set_status(job, status)
        job.status_reason = reason
        for name, value in fields.items():
            setattr(job, name, value)

    return _update(job_id, change)


def succeeded(job_id: str, output: dict[str, Any], store: ArtifactStore) -> str:
    """The build host's result came back through the state machine: record the image."""
    job = records.find(JobModel, job_id)
    if job is None:
        return "ignored: no such job"
    if job.status == "success":
        return "unchanged: already success"
    image_id = job.planned_image_id
    manifest = output.get("manifest", {})
    link = {
        "path": store.url(manifest_key(image_id)),
        "etag": str(manifest.get("etag", "")),
        "type": "s3",
    }
    images.record_build(image_id, job.tenant, job.image_root_archive_name, job.arch, link, job.id)
    _finish(
        job_id,
        "success",
        None,
        resultant_image_id=image_id,
        build_log_key=output.get("log_key"),
        build_node=output.get("node") or job.build_node,
        host_answered=output.get("answered_at"),
    )
    observability.count("JobsSucceeded")
    observability.seconds("BuildSeconds", float(output.get("build_seconds", 0)))
    return "success"


def failed(job_id: str, error: str, cause: str | None = None) -> str:
    job = records.find(JobModel, job_id)
    if job is None:
        return "ignored: no such job"
    if job.status in JOB_TERMINAL:
        return f"unchanged: already {job.status}"
    _finish(job_id, "error", describe_failure(error, cause))
    observability.count("JobsFailed")
    return "error"


def describe_failure(error: str, cause: str | None) -> str:
    if error in ("States.Timeout", "States.HeartbeatTimeout"):
        return "the build host went silent (no heartbeat) twice; the build was abandoned"
    return f"{error}: {cause}" if cause else error


def stale_jobs(older_than_seconds: float, now: float | None = None) -> list[JobModel]:
    """Unfinished jobs created before the cutoff, oldest first (from the sparse index)."""
    cutoff = (now or time.time()) - older_than_seconds
    stale = []
    for job in JobModel.by_unfinished.query(KIND):
        if _epoch(job.created) > cutoff:
            break
        stale.append(job)
    return stale


def expire(job_id: str, reason: str) -> str:
    return failed(job_id, reason)
