"""Composer-shaped bodies: compose status with per-image and upload status, logs, metadata and
manifests. Reads go through chalicelib/domain/composes.py."""

from __future__ import annotations

from typing import Any

from chalicelib.adapters.artifacts import ArtifactStore
from chalicelib.adapters.models import ComposeModel, JobModel
from chalicelib.domain.builds.logs import LogPart
from chalicelib.domain.composer import composes, koji_builds
from chalicelib.domain.composer.composes import ImageBuild
from chalicelib.domain.composer.job_kinds import ComposeImageJob
from chalicelib.faces.composer.errors import PREFIX
from chalicelib.host_protocol import FailureCode, MediaType

#: job status -> composer image status
IMAGE_STATUS = {
    "creating": "pending",
    "fetching_recipe": "pending",
    "fetching_image": "pending",
    "waiting_for_repos": "pending",
    "building_image": "building",
    "waiting_on_user": "building",
    "uploading": "uploading",
    "registering": "registering",
    "success": "success",
    "error": "failure",
}
#: why an image failed: the job's failure code -> composer error (id, reason); the registry's
#: entries are in errors.py. Anything not listed is a failed build (10).
IMAGE_ERRORS: dict[FailureCode, tuple[int, str]] = {
    FailureCode.CANCELLED: (29, "The image build was cancelled"),
    FailureCode.UPLOAD_REFUSED: (13, "The upload target is not available"),
    FailureCode.REGISTER_FAILED: (12, "Registering the image failed"),
    FailureCode.UPLOAD_FAILED: (11, "Uploading the image failed"),
    FailureCode.HOST_SILENT: (27, "The build host stopped responding"),
    FailureCode.NO_BUILD_NODE: (28, "No build host serves this image"),
    FailureCode.KOJI_INIT_FAILED: koji_builds.KOJI_INIT_ERROR,
}
BUILD_FAILED = (10, "Building the image failed")


def ref(kind: str, compose_id: str, suffix: str = "") -> dict[str, str]:
    return {"href": f"{PREFIX}/composes/{compose_id}{suffix}", "id": compose_id, "kind": kind}


def compose_id(compose: ComposeModel) -> dict[str, str]:
    return {"href": f"{PREFIX}/compose", "id": compose.id, "kind": "ComposeId"}


def compose_status(
    compose: ComposeModel, builds: list[ImageBuild], store: ArtifactStore
) -> dict[str, Any]:
    statuses = [image_status(build, store) for build in builds]
    body = {
        **ref("ComposeStatus", compose.id),
        "status": composes.compose_status(builds, composes.koji_import(compose)),
        "image_status": statuses[0],
        "image_statuses": statuses,
    }
    build_id = (compose.koji or {}).get("build_id")
    if build_id is not None:
        body["koji_status"] = {"build_id": build_id}
    return body


def image_status(build: ImageBuild, store: ArtifactStore) -> dict[str, Any]:
    job = build.job
    if job is None:
        reason = "the image build was never recorded (an interrupted request); compose again"
        return {"status": "failure", "error": {"id": 30, "reason": reason, "details": reason}}
    status: dict[str, Any] = {"status": IMAGE_STATUS.get(job.status, "pending")}
    upload = upload_status(job, store)
    if upload is not None:
        status["upload_status"] = upload
    if job.status == "error":
        status["error"] = _image_error(job)
    if job.timing:  # Kiln's extension: stages, instance-seconds and cost (docs/build-cost.md)
        status["timing"] = job.timing
    return status


def _image_error(job: JobModel, default: tuple[int, str] = BUILD_FAILED) -> dict[str, Any]:
    """The job's failure code picks the error (``default`` for a code the table does not
    name); its reason, without the code, is the details."""
    code = FailureCode.__members__.get(job.failure_code or "")
    error_id, summary = IMAGE_ERRORS.get(code, default) if code else default
    details = job.status_reason or "the build failed"
    if code is not None:
        details = details.removeprefix(f"{code.wire}: ")
    return {"id": error_id, "reason": summary, "details": details}


def upload_status(job: JobModel, store: ArtifactStore) -> dict[str, Any] | None:
    """Only for targets whose status the document can describe unambiguously (aws, aws.s3);
    options carry the target's required fields, empty until the upload succeeded."""
    upload = ComposeImageJob.of(job).upload or {}
    target = upload.get("type")
    if target not in ("aws", "aws.s3"):
        return None
    reported = job.upload_status or {}
    if job.status == "success":
        state = "success"
    elif job.status == "error":
        state = "failure"
    else:
        state = reported.get("status") or "pending"
    found = reported.get("options") or {}
    if target == "aws":
        region = found.get("region") or upload.get("options", {}).get("region") or ""
        options = {"ami": found.get("ami") or "", "region": region}
    else:
        key = found.get("key") or _disk_key(job) if state == "success" else None
        options = {"url": store.presign_get(key) if key else ""}
    return {"type": target, "status": state, "options": options}


def _disk_key(job: JobModel) -> str | None:
    for artifact in job.artifacts or []:
        if str(artifact.get("type", "")).startswith(MediaType.DISK_PREFIX):
            return str(artifact["key"])
    return None


def logs(compose: ComposeModel, builds: list[ImageBuild], parts: list[LogPart]) -> dict[str, Any]:
    body: dict[str, Any] = {
        **ref("ComposeLogs", compose.id, "/logs"),
        "image_builds": [
            {
                "image_index": build.index,
                "arch": build.job.arch if build.job else "",
                "image_type": build.image_type,
                "status": image_status_value(build),
                "log": part.text,
                "offset": part.offset,
                "size": part.size,
                "streaming": part.streaming,
            }
            for build, part in zip(builds, parts, strict=True)
        ],
    }
    if compose.koji:
        body["koji"] = koji_logs(compose)
    return body


def koji_logs(compose: ComposeModel) -> dict[str, Any]:
    """The Koji steps' results, as composer gives its koji-init and koji-finalize job results:
    the reserved build id, or the step's error."""
    koji = compose.koji or {}
    imported: dict[str, Any] = {}
    job = composes.koji_import(compose)
    if job is not None and job.status == "success":
        imported = {"build_id": koji.get("build_id")}
    elif job is not None and job.status == "error":
        # the import's own failure (16), or the core's (no host serves it, its host went silent)
        imported = {"error": _image_error(job, koji_builds.KOJI_IMPORT_ERROR)}
    return {"init": koji.get("init") or {}, "import": imported}


def image_status_value(build: ImageBuild) -> str:
    return IMAGE_STATUS.get(build.job.status, "pending") if build.job else "failure"


def metadata(
    compose: ComposeModel,
    packages: list[dict[str, Any]] | None,
    builds: list[ImageBuild] | None = None,
    sboms: list[dict[str, str] | None] | None = None,
) -> dict[str, Any]:
    """Kiln adds ``images`` once any image has SBOMs: one entry per image request, in request
    order, ``{"image_index", "image_type", "sbom"}`` (``sbom`` only where the build made them;
    docs/sbom.md)."""
    body: dict[str, Any] = ref("ComposeMetadata", compose.id, "/metadata")
    if packages is not None:
        body["packages"] = packages
    if builds and sboms and any(sboms):
        body["images"] = [
            {"image_index": build.index, "image_type": build.image_type, **_sbom(sbom)}
            for build, sbom in zip(builds, sboms, strict=True)
        ]
    return body


def manifests(
    compose: ComposeModel,
    plans: list[dict[str, Any]],
    sboms: list[dict[str, str] | None] | None = None,
) -> dict[str, Any]:
    """Kiln adds ``sbom`` to the manifest of each image whose build made SBOMs (docs/sbom.md)."""
    listed = [
        {**plan, **_sbom(sbom)}
        for plan, sbom in zip(plans, sboms or [None] * len(plans), strict=True)
    ]
    return {**ref("ComposeManifests", compose.id, "/manifests"), "manifests": listed}


def _sbom(sbom: dict[str, str] | None) -> dict[str, Any]:
    """Kiln's extension field: ``{"sbom": {"cyclonedx": <URL>, "spdx": <URL>}}``, or nothing."""
    return {"sbom": sbom} if sbom else {}
