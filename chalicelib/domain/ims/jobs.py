"""Build jobs: create (from a recipe) and customize (from an image), read, and the worker's
PATCH. Dispatch lives in dispatch.py, host reports in build_results.py, removal in
job_removal.py."""

from __future__ import annotations

import uuid
from typing import Any

from chalicelib import observability
from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore
from chalicelib.adapters.models import ImageModel, JobModel, PublicKeyModel, RecipeModel
from chalicelib.auth import Principal
from chalicelib.domain.builds import dispatch
from chalicelib.domain.builds import logs as job_logs
from chalicelib.domain.builds import nodes as build_nodes
from chalicelib.domain.builds.job_records import KIND as JOB_RECORDS
from chalicelib.domain.builds.job_records import fail_new, set_status, update
from chalicelib.domain.builds.kinds import Ports
from chalicelib.domain.ims import artifact_links, job_kinds
from chalicelib.domain.ims.job_kinds import ImsJob
from chalicelib.domain.states import JOB_STATUSES, JOB_TRANSITIONS, check_move
from chalicelib.domain.validation import BodyCheck, require_object
from chalicelib.errors import Invalid, NotFound
from chalicelib.host_protocol import FailureCode

KIND = "job"  # IMS jobs' records (compose images are filed apart)

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
    "ssh_containers",
    "fresh_build",  # Kiln's extension: never serve this job from the build cache
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
)


def create(principal: Principal, body: Any, ports: Ports) -> JobModel:
    """Store the job and dispatch it, or let it wait for a build node that serves it."""
    job, ims = _job_from_body(body)
    _check_public_key(ims, principal)
    if job.job_type == "customize":
        image = _usable_image(ims, principal, ports.artifacts)
        job.arch, job.recipe_type = image.arch or "x86_64", None
        job.job_kind = job_kinds.CUSTOMIZE_KIND
    else:
        recipe = _usable_recipe(ims, principal)
        job.arch, job.recipe_type = recipe.arch, recipe.recipe_type
        ims.require_dkms = ims.require_dkms or recipe.require_dkms
        job.job_kind = job_kinds.CREATE_KIND
    job.payload = ims.to_payload()
    job.planned_image_id = str(uuid.uuid4())
    job.unfinished = JOB_RECORDS
    records.stamp(job, principal.tenant, KIND)
    if job.recipe_type == "packer" and not build_nodes.advertised("packer"):
        reason = "no registered build node advertises recipe type 'packer'"
        fail_new(job, FailureCode.NO_BUILD_NODE, reason)
        observability.count("JobsFailed")
        return records.insert(job)
    return dispatch.begin(job, ports)


def _job_from_body(body: Any) -> tuple[JobModel, ImsJob]:
    check = BodyCheck(require_object(body), known=CREATE_FIELDS, read_only=READ_ONLY)
    job = JobModel(status="creating")
    job.job_type = check.choice("job_type", JOB_TYPES, required=True)
    ims = ImsJob(
        artifact_id=check.uuid("artifact_id", required=True) or "",
        public_key_id=check.uuid("public_key_id", required=True) or "",
        image_root_archive_name=check.string("image_root_archive_name", True, min_len=1) or "",
        kernel_file_name=check.string("kernel_file_name", min_len=1) or "vmlinuz",
        initrd_file_name=check.string("initrd_file_name", min_len=1) or "initrd",
        kernel_parameters_file_name=(
            check.string("kernel_parameters_file_name", min_len=1) or "kernel-parameters"
        ),
        enable_debug=bool(check.boolean("enable_debug")),
        build_env_size=check.integer("build_env_size", minimum=1) or 15,
        require_dkms=bool(check.boolean("require_dkms")),
    )
    containers = _ssh_containers(check)
    job.fresh_build = bool(check.boolean("fresh_build"))
    check.done()
    job.request = dict(check.body)
    if not containers and job.job_type == "customize":
        containers = [{"name": "customize", "jail": False}]
    if not containers and ims.enable_debug:
        containers = [{"name": "debug", "jail": False}]
    job.ssh_containers = [{**c, "status": "pending", "connection_info": {}} for c in containers]
    return job, ims


def _ssh_containers(check: BodyCheck) -> list[dict[str, Any]]:
    """IMS's ssh_containers: at most one {name, jail}; the host fills in status and address."""
    value = check.body.get("ssh_containers")
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 1:
        check.fail("ssh_containers", "A list of at most one SSH container.")
        return []
    found = []
    for item in value:
        name = item.get("name") if isinstance(item, dict) else None
        jail = item.get("jail") if isinstance(item, dict) else None
        unknown = set(item) - {"name", "jail", "status", "connection_info"} if name else set()
        if not isinstance(name, str) or not 1 <= len(name) <= 40 or not isinstance(jail, bool):
            check.fail("ssh_containers", "Each needs name (1-40 characters) and jail (boolean).")
        elif unknown:
            check.fail("ssh_containers", f"Unknown field(s): {', '.join(sorted(unknown))}.")
        else:
            found.append({"name": name, "jail": jail})
    return found


def _check_public_key(ims: ImsJob, principal: Principal) -> None:
    if _visible(PublicKeyModel, ims.public_key_id, principal, "public-key") is None:
        raise Invalid(
            f"public key {ims.public_key_id} not found", {"public_key_id": ["No such public key."]}
        )


def _usable_recipe(ims: ImsJob, principal: Principal) -> RecipeModel:
    """The job's recipe, once it is the caller's and its archive is ready."""
    recipe = _visible(RecipeModel, ims.artifact_id, principal, "recipe")
    if recipe is None:
        raise Invalid(f"recipe {ims.artifact_id} not found", {"artifact_id": ["No such recipe."]})
    if recipe.archive_status != "ready" or not recipe.link:
        reason = recipe.archive_reason or "upload its archive first"
        raise Invalid(
            f"recipe {recipe.id} has no usable archive ({recipe.archive_status}): {reason}",
            {"artifact_id": [f"Recipe archive is {recipe.archive_status}."]},
        )
    return recipe  # type: ignore[no-any-return]


def _usable_image(ims: ImsJob, principal: Principal, store: ArtifactStore) -> ImageModel:
    """A customize job's image: the caller's, with a manifest in this bucket."""
    image = _visible(ImageModel, ims.artifact_id, principal, "image")
    if image is None:
        raise Invalid(f"image {ims.artifact_id} not found", {"artifact_id": ["No such image."]})
    key = store.own_key(image.link["path"]) if image.link else None
    if key is None or not artifact_links.may_link(key, image.tenant) or not store.exists(key):
        raise Invalid(
            f"image {image.id} has no manifest in {store.bucket} to customize",
            {"artifact_id": ["Image has no manifest."]},
        )
    return image  # type: ignore[no-any-return]


def _visible(model: Any, record_id: str, principal: Principal, kind: str) -> Any:
    record = records.find(model, record_id)
    if record is None or record.kind != kind or not principal.can_see(record.tenant):
        return None
    return record


def get(principal: Principal, job_id: str) -> JobModel:
    return records.get_visible(JobModel, job_id, principal, "job", KIND)


def build_log(principal: Principal, job_id: str, store: ArtifactStore) -> str:
    """The build host's log of the job: all of it once the job ended, what the host has
    written so far while it runs."""
    job = get(principal, job_id)
    part = job_logs.read(job, store)
    if part.size == 0:
        raise NotFound(f"job {job_id} has no build log yet (status {job.status})")
    return part.text


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
            set_status(job, status)
        if resultant is not None:
            job.payload = {**job.payload, "resultant_image_id": resultant}

    return update(job_id, change)
