"""Rebuild checks of IMS images, Kiln's extension (docs/reproducibility.md): an image Kiln
built from a recipe is built again from its job, on another build node where one serves it,
and the host compares the result with the original byte for byte (builders/compare.py). The
verdict is kept on the image record and shown with the image (``reproducibility``). The job
kind and the state are in rebuild_check_kind.py.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore
from chalicelib.adapters.models import ImageModel, JobModel, RecipeModel
from chalicelib.auth import Principal
from chalicelib.domain.builds import dispatch
from chalicelib.domain.builds import logs as job_logs
from chalicelib.domain.builds.job_records import KIND as JOB_INDEX_KIND
from chalicelib.domain.builds.kinds import Ports
from chalicelib.domain.ims import images
from chalicelib.domain.ims.job_kinds import REBUILD_CHECK_KIND, REBUILDABLE, ImsJob
from chalicelib.domain.ims.rebuild_check_kind import (
    ERROR,
    FIELDS,
    IN_FLIGHT,
    JOB_RECORD_KIND,
    PENDING,
    CheckJob,
    compared_artifacts,
    ended,
    load,
    settle,
    shown,
)
from chalicelib.errors import BadRequest, Conflict, NotFound

# --- the routes' use cases ----------------------------------------------------------------------


def request_check(principal: Principal, image_id: str, body: Any, ports: Ports) -> dict[str, Any]:
    """Start a rebuild check of the caller's image; its ``reproducibility``, pending."""
    if body not in (None, {}):
        detail = "the body must be empty or {}: a rebuild check takes no options"
        if not isinstance(body, dict):
            raise BadRequest(detail, {"body": ["Not an object."]})
        raise BadRequest(detail, {field: ["Unknown field."] for field in body})
    image = images.get(principal, image_id)
    original = _original_job(image)
    _check_recipe_archive(original, image.id, ports.artifacts)
    if not compared_artifacts(original):
        raise Conflict(f"the job that built image {image.id} recorded no artifacts to compare")
    job = JobModel(
        status="creating",
        job_kind=REBUILD_CHECK_KIND,
        job_type="create",
        arch=original.arch,
        recipe_type=original.recipe_type,
        planned_image_id=str(uuid.uuid4()),  # nothing is published; never the image's prefix
        unfinished=JOB_INDEX_KIND,
        payload=dataclasses.asdict(CheckJob(image.id, original.id, original.build_node)),
        fresh_build=True,
    )
    records.stamp(job, image.tenant, JOB_RECORD_KIND)
    state = dict.fromkeys(FIELDS)
    state.update(
        status=PENDING,
        job_id=job.id,
        requested=job.created,
        original_job_id=original.id,
        original_node=original.build_node,
    )
    _claim(image.id, state)
    try:
        dispatch.begin(job, ports)
    except Exception as exc:
        settle(image.id, job.id, ended(ERROR, f"the check could not be started: {exc}"))
        raise
    return shown(records.find(ImageModel, image.id) or image) or state


def get_check(principal: Principal, image_id: str) -> dict[str, Any]:
    found = shown(images.get(principal, image_id))
    if found is None:
        raise NotFound(f"image {image_id} has had no rebuild check")
    return found


def check_log(principal: Principal, image_id: str, store: ArtifactStore) -> str:
    """The build log of the image's last rebuild check (so far, while it runs)."""
    state = get_check(principal, image_id)
    job = records.find(JobModel, state.get("job_id") or "")
    part = job_logs.read(job, store) if job is not None else None
    if part is None or part.size == 0:
        raise NotFound(f"the rebuild check of image {image_id} has no build log yet")
    return part.text


# --- what may be checked ------------------------------------------------------------------------


def _original_job(image: ImageModel) -> JobModel:
    """The successful Kiln job that built the image; Conflict if there is none to rebuild."""
    if not image.source_job_id:
        raise Conflict(
            f"image {image.id} was not built by Kiln (it was registered with a link): there is "
            "no build to repeat"
        )
    job = records.find(JobModel, image.source_job_id)
    if job is None or job.tenant != image.tenant:
        raise Conflict(f"the job that built image {image.id} is gone: there is no build to repeat")
    if job.job_kind not in REBUILDABLE:
        raise Conflict(
            f"image {image.id} was made by a {job.job_kind} job (an SSH session), which cannot "
            "be repeated; only images built from a recipe can be rebuilt"
        )
    if job.status != "success":
        raise Conflict(f"the job that built image {image.id} ended {job.status}")
    return job


def _check_recipe_archive(original: JobModel, image_id: str, store: ArtifactStore) -> None:
    recipe = records.find(RecipeModel, ImsJob.of(original).artifact_id)
    key = store.own_key(recipe.link["path"]) if recipe is not None and recipe.link else None
    if recipe is None or recipe.archive_status != "ready" or key is None or not store.exists(key):
        raise Conflict(
            f"the recipe archive image {image_id} was built from is gone: it cannot be rebuilt"
        )


# --- the image's state --------------------------------------------------------------------------


def _claim(image_id: str, state: dict[str, Any]) -> None:
    """The image takes the new check, unless one is pending or running (409)."""

    def change(image: ImageModel) -> None:
        current = shown(image)
        if current is not None and current["status"] in IN_FLIGHT:
            raise Conflict(
                f"a rebuild check of image {image_id} is already {current['status']} "
                f"(job {current['job_id']})"
            )
        image.reproducibility = state

    records.change_versioned(lambda: load(image_id), change, f"image {image_id}")
