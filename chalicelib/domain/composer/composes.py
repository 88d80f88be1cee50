"""Composes: one compose fans out to one build job per image request, each dispatched through
the same state machine and build hosts as IMS jobs. Status, logs, metadata and build plans
are read from those jobs and their artifacts."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from typing import Any

from chalicelib import observability
from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore, compose_recipe_key
from chalicelib.adapters.models import ComposeModel, JobModel
from chalicelib.auth import Principal
from chalicelib.domain.builds import dispatch
from chalicelib.domain.builds import logs as job_logs
from chalicelib.domain.builds import nodes as build_nodes
from chalicelib.domain.builds.job_records import KIND as JOB_KIND
from chalicelib.domain.builds.job_records import fail_new
from chalicelib.domain.builds.kinds import Ports
from chalicelib.domain.composer import koji_builds
from chalicelib.domain.composer import recipes as compose_recipes
from chalicelib.domain.composer import request as compose_request
from chalicelib.domain.composer.job_kinds import (
    COMPOSE_IMAGE_KIND,
    JOB_RECORD_KIND,
    ComposeImageJob,
)
from chalicelib.domain.composer.request import ComposePlan, ImagePlan
from chalicelib.domain.states import JOB_TERMINAL
from chalicelib.host_protocol import FailureCode, MediaType

KIND = "compose"
PACKAGES_TYPE = MediaType.PACKAGES_JSON
BUILD_PLAN_TYPE = MediaType.BUILD_PLAN_JSON
#: Kiln's ``sbom`` extension: its member -> the artifact type (docs/sbom.md)
SBOM_TYPES = {"cyclonedx": MediaType.SBOM_CYCLONEDX, "spdx": MediaType.SBOM_SPDX}
#: upload targets Kiln cannot reach without credentials it does not have
UNREACHABLE_TARGETS = {
    "gcp": "gcp uploads need Google Cloud credentials, and none are configured for Kiln",
    "azure": "azure uploads need Azure credentials, and none are configured for Kiln",
}


@dataclasses.dataclass(frozen=True)
class ImageBuild:
    index: int
    image_type: str
    job: JobModel | None  # None: the job record was never written (an interrupted create)


def create(principal: Principal, body: Any, ports: Ports) -> ComposeModel:
    """Check the request, store the generated recipes, then the compose, then start one build
    per image (a build no node serves yet waits for one, as IMS jobs do)."""
    plan = compose_request.read(body, build_nodes.advertised(compose_request.OTHER_RECIPE_TYPE))
    hubs = koji_builds.hubs(ports)
    target = koji_builds.read(body.get("koji"), hubs)
    compose = records.stamp(ComposeModel(distribution=plan.distribution), principal.tenant, KIND)
    compose.request = body
    if target is not None:  # reserved first: a failed init fails the images before they build
        compose.koji = koji_builds.reserve(target, hubs)
    init_failed = koji_builds.init_failure(compose)
    jobs, recipes = [], []
    for image in plan.images:
        document = _recipe(plan, image, body)
        recipes.append(document)
        jobs.append(_job(compose, plan, image, document, ports.artifacts))
    compose.job_ids = [job.id for job in jobs]
    compose.recipes = recipes
    compose.image_types = [image.image_type for image in plan.images]
    records.insert(compose)
    refused = False
    for job in jobs:
        upload_type = ComposeImageJob.of(job).upload["type"]
        unreachable = UNREACHABLE_TARGETS.get(upload_type)
        if init_failed is not None or unreachable:
            code = FailureCode.KOJI_INIT_FAILED if init_failed else FailureCode.UPLOAD_REFUSED
            reason = init_failed or f"upload to {upload_type} refused: {unreachable}"
            fail_new(job, code, reason)
            observability.count("JobsFailed")
            records.insert(job)
            refused = True
        else:
            dispatch.begin(job, ports)
    if refused and target is not None:
        koji_builds.give_back(compose.id, ports)
    observability.count("ComposesCreated")
    return compose


def find(compose_id: str) -> ComposeModel | None:
    return records.find(ComposeModel, compose_id)


def _recipe(plan: ComposePlan, image: ImagePlan, body: dict[str, Any]) -> dict[str, Any]:
    if plan.family == "debian":
        return compose_recipes.recipe(plan, image)
    return compose_recipes.other_recipe(body, image)


def _job(
    compose: ComposeModel,
    plan: ComposePlan,
    image: ImagePlan,
    document: dict[str, Any],
    store: ArtifactStore,
) -> JobModel:
    name = "recipe.yaml" if plan.family == "debian" else "compose-request.json"
    archive = compose_recipes.archive(document, name)
    key = compose_recipe_key(compose.id, image.index)
    store.put_bytes(key, archive, "application/gzip")
    payload = ComposeImageJob(
        compose_id=compose.id,
        recipe_key=key,
        recipe_sha256=hashlib.sha256(archive).hexdigest(),
        upload=image.upload,
    )
    job = JobModel(
        status="creating",
        job_kind=COMPOSE_IMAGE_KIND,
        payload=payload.to_payload(),
        job_type="create",
        arch=image.arch,
        recipe_type="kiln-debian" if plan.family == "debian" else "osbuild",
        planned_image_id=str(uuid.uuid4()),
        unfinished=JOB_KIND,
        request={"compose_request": compose.request, "image_request_index": image.index},
        fresh_build=bool(compose.request.get("fresh_build")),
    )
    return records.stamp(job, compose.tenant, JOB_RECORD_KIND)


def get(principal: Principal, compose_id: str) -> ComposeModel:
    return records.get_visible(ComposeModel, compose_id, principal, "compose", KIND)


def image_builds(compose: ComposeModel) -> list[ImageBuild]:
    """The compose's image builds, in request order."""
    found = {job.id: job for job in JobModel.batch_get(list(compose.job_ids))}
    types = list(compose.image_types or [])
    return [
        ImageBuild(index=i, image_type=types[i] if i < len(types) else "", job=found.get(job_id))
        for i, job_id in enumerate(compose.job_ids)
    ]


def compose_status(builds: list[ImageBuild], koji_import: JobModel | None = None) -> str:
    """pending until every image has ended; then failure if any failed, else success. A Koji
    compose is also pending until its import has ended, and a success only if it succeeded."""
    if any(b.job is not None and b.job.status not in JOB_TERMINAL for b in builds):
        return "pending"
    if not all(b.job is not None and b.job.status == "success" for b in builds):
        return "failure"
    if koji_import is None:
        return "success"
    return {"success": "success", "error": "failure"}.get(koji_import.status, "pending")


def koji_import(compose: ComposeModel) -> JobModel | None:
    """A Koji compose's import job (a stand-in not yet started while it has none), or None
    for a compose without Koji."""
    koji = compose.koji
    if not koji:
        return None
    job_id = koji.get("import_job_id")
    found = records.find(JobModel, job_id) if job_id else None
    return found or JobModel(status="creating")


def log(build: ImageBuild, store: ArtifactStore, offset: int) -> job_logs.LogPart:
    """The image's build log from ``offset`` (what exists so far while it builds)."""
    if build.job is None:
        return job_logs.LogPart("", offset, 0, False)
    return job_logs.read(build.job, store, offset)


def _artifact_json(job: JobModel | None, media_type: str, store: ArtifactStore) -> Any:
    if job is None or job.status != "success":
        return None
    for artifact in job.artifacts or []:
        if artifact.get("type") == media_type:
            return json.loads(store.read(artifact["key"]))
    return None


def packages(builds: list[ImageBuild], store: ArtifactStore) -> list[dict[str, Any]] | None:
    """Installed packages of every built image (one entry per distinct package), or None
    while no image has been built."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    built = False
    for build in builds:
        listed = _artifact_json(build.job, PACKAGES_TYPE, store)
        if listed is None:
            continue
        built = True
        for package in listed:
            found.setdefault((package["name"], package["version"], package["arch"]), package)
    return [found[key] for key in sorted(found)] if built else None


def build_plan(compose: ComposeModel, build: ImageBuild, store: ArtifactStore) -> dict[str, Any]:
    """The resolved build plan once the image is built; before, what Kiln will ask for."""
    resolved = _artifact_json(build.job, BUILD_PLAN_TYPE, store)
    if resolved is not None:
        return dict(resolved)
    recipes = compose.recipes or []
    job = build.job
    return {
        "format": "kiln-compose-plan/1",
        "image_type": build.image_type,
        "arch": job.arch if job else None,
        "recipe_type": job.recipe_type if job else None,
        "recipe": recipes[build.index] if build.index < len(recipes) else None,
        "recipe_sha256": ComposeImageJob.of(job).recipe_sha256 if job else None,
    }


def sbom(build: ImageBuild, store: ArtifactStore) -> dict[str, str] | None:
    """Presigned download URLs of the image's SBOMs (``{"cyclonedx", "spdx"}``, each only if
    the build made it) once it is built; None while it is not, or when it made none."""
    job = build.job
    if job is None or job.status != "success":
        return None
    keys = {artifact.get("type"): artifact.get("key") for artifact in job.artifacts or []}
    found = {name: keys.get(kind) for name, kind in SBOM_TYPES.items()}
    return {name: store.presign_get(str(key)) for name, key in found.items() if key} or None
