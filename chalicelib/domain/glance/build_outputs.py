"""One registry: the image a build job makes (an IMS job, a compose's image) appears in Glance
too, owned by the job's tenant, private; the job's kind says so (its announce_success).
It points at the build's artifact (Glance never deletes that data); the
import worker hashes it where it lies and activates the record. When the build made SBOMs, the
property ``kiln_sbom`` names Kiln's route that serves them (sbom.py)."""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

from chalicelib.adapters import records
from chalicelib.adapters.glance_models import IN_FLIGHT, GlanceImageModel
from chalicelib.adapters.models import JobModel
from chalicelib.adapters.work_queue import WorkQueue
from chalicelib.domain.glance import access
from chalicelib.domain.glance.access import now
from chalicelib.errors import Conflict, Gone
from chalicelib.host_protocol import MediaType

#: artifact type -> Glance disk_format, in order of preference (a disk over a root squashfs)
DISK_FORMAT_OF = {
    MediaType.DISK_QCOW2: "qcow2",
    MediaType.DISK_VMDK: "vmdk",
    MediaType.DISK_RAW: "raw",
    MediaType.ROOTFS_SQUASHFS: "raw",
}
_NAMESPACE = uuid.UUID("6f1c0d1e-4b0a-4a8e-9a57-2f1d3c5b7e90")
#: the property naming Kiln's route to the image's SBOM (domain/glance/sbom.py, docs/sbom.md)
SBOM_PROPERTY = "kiln_sbom"
SBOM_TYPES = (MediaType.SBOM_CYCLONEDX, MediaType.SBOM_SPDX)


def glance_id(job_id: str) -> str:
    """The same Glance image for a job however often its result is replayed."""
    return str(uuid.uuid5(_NAMESPACE, job_id))


def sbom_path(image_id: str) -> str:
    return f"/v2/images/{image_id}/sbom"


def _chosen(artifacts: list[dict[str, Any]]) -> dict[str, Any] | None:
    for kind in DISK_FORMAT_OF:
        for artifact in artifacts:
            if artifact.get("type") == kind and artifact.get("key"):
                return artifact
    return None


def register(job: JobModel, name: str, source: dict[str, str], queue: WorkQueue) -> str:
    """Record a successful job's image in Glance (importing) and queue its hashing.
    ``source``: the face's properties saying where the image came from (kiln_source, ...)."""
    if job.status != "success":
        return "no glance image: the job did not succeed"
    artifact = _chosen(job.artifacts or [])
    if artifact is None:
        return "no glance image: no disk or root image among the artifacts"
    image_id, stamp = glance_id(job.id), now()
    task = {"id": str(uuid.uuid4()), "method": "build-output", "key": artifact["key"]}
    properties = {
        **source,
        "kiln_job_id": job.id,
        "kiln_artifact_type": str(artifact["type"]),
        "architecture": job.arch,
        "os_glance_importing_to_stores": "s3",
        "os_glance_failed_import": "",
    }
    if any(item.get("type") in SBOM_TYPES and item.get("key") for item in job.artifacts or []):
        properties[SBOM_PROPERTY] = sbom_path(image_id)
    image = GlanceImageModel(
        id=image_id,
        owner=job.tenant,
        created=stamp,
        created_id=f"{stamp}#{image_id}",
        updated=stamp,
        name=name,
        status="importing",
        in_flight=IN_FLIGHT,
        visibility="private",
        disk_format=DISK_FORMAT_OF[artifact["type"]],
        container_format="bare",
        properties=properties,
        data_owned=False,
        import_task={**task, "started": time.time()},
    )
    try:
        records.save_new(image, GlanceImageModel.id, "registered")
    except Conflict:  # a replayed result: its hashing may never have been queued
        existing = records.find(GlanceImageModel, image_id)
        pending = existing.import_task if existing and existing.status == "importing" else None
        if not pending or pending.get("queued"):
            return "glance image already registered"
        task = dict(pending)
    _queue_hashing(image_id, task, queue)
    return f"glance image {image_id}"


def _queue_hashing(image_id: str, task: dict[str, Any], queue: WorkQueue) -> None:
    """Send the import worker its message, then note on the task that it went (a replay of the
    result sends it again until then; the worker ignores a message for a finished import)."""
    queue.send({"image_id": image_id, "task": task["id"]})

    def sent(image: GlanceImageModel) -> None:
        current = image.import_task
        if image.status == "importing" and current and current.get("id") == task["id"]:
            image.import_task = {**current, "queued": True}

    with contextlib.suppress(Gone):
        access.change(image_id, sent)
