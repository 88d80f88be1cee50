"""The composer's job kinds on the build core: ``compose-image``, one image of a compose, and
``koji-import``, a Koji compose's import once its images are built (koji_builds.py).
``ComposeImageJob`` is an image job's payload on a job record; only the composer's code reads
it."""

from __future__ import annotations

import dataclasses
from typing import Any

from chalicelib.adapters.models import JobModel
from chalicelib.domain.builds.kinds import Description, JobKind, Ports
from chalicelib.domain.glance import build_outputs
from chalicelib.host_protocol import Failure

COMPOSE_IMAGE_KIND = "compose-image"
DISK_NAME = "disk"
#: a kiln-debian image's source_date_epoch: 0 is the date of the suite's Release file on the
#: mirror (builders/backends/debian_resolve.py), so equal requests against an unchanged mirror
#: build equal images, and the build cache serves a repeated compose (docs/build-cache.md)
RELEASE_DATE_EPOCH = 0


@dataclasses.dataclass
class ComposeImageJob:
    compose_id: str
    recipe_key: str  # the recipe archive Kiln generated for this image request
    recipe_sha256: str
    upload: dict[str, Any]  # {"type", "options"}: where the image goes

    @classmethod
    def of(cls, job: JobModel) -> ComposeImageJob:
        return cls(**job.payload)

    def to_payload(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _message(job: JobModel, ports: Ports) -> dict[str, Any]:
    image = ComposeImageJob.of(job)
    message: dict[str, Any] = {
        "image_root_archive_name": DISK_NAME,
        "recipe": {
            "bucket": ports.artifacts.bucket,
            "key": image.recipe_key,
            "sha256": image.recipe_sha256,
        },
        "upload": image.upload,
    }
    if job.recipe_type == "kiln-debian":
        message["source_date_epoch"] = RELEASE_DATE_EPOCH
    return message


def _in_glance(job: JobModel, ports: Ports) -> str:
    """The one registry: the compose's image shows in Glance as well."""
    image = ComposeImageJob.of(job)
    target = (image.upload or {}).get("type") or "image"
    return build_outputs.register(
        job,
        f"compose-{image.compose_id[:8]}-{job.arch}-{target}",
        {"kiln_source": "composer", "kiln_compose_id": image.compose_id},
        ports.glance_imports,
    )


def _image_built(job: JobModel, ports: Ports) -> str:
    """In Glance; and when it was a Koji compose's last image, the import starts."""
    said = [_in_glance(job, ports)]
    from chalicelib.domain.composer import composes, koji_builds  # they import this module

    compose = composes.find(ComposeImageJob.of(job).compose_id)
    if compose is not None and (compose.koji or {}).get("build_id"):
        builds = composes.image_builds(compose)
        if all(b.job is not None and b.job.status == "success" for b in builds):
            said.append(koji_builds.images_succeeded(compose.id, builds, ports))
    return "; ".join(line for line in said if line)


def _image_failed(job: JobModel, _failure: Failure, ports: Ports) -> str:
    from chalicelib.domain.composer import koji_builds

    return koji_builds.give_back(ComposeImageJob.of(job).compose_id, ports)


def _import_message(job: JobModel, ports: Ports) -> dict[str, Any]:
    from chalicelib.domain.composer import composes, koji_builds

    compose = composes.find(job.payload["compose_id"])
    if compose is None:
        raise ValueError(f"the compose of Koji import {job.id} is gone")
    access = koji_builds.hubs(ports).get((compose.koji or {}).get("server", ""))
    cg_name = access.content_generator if access else "osbuild"
    builds = composes.image_builds(compose)
    message = koji_builds.import_message(compose, builds, ports.artifacts.bucket, cg_name)
    return {"koji_import": message}


def _imported(job: JobModel, ports: Ports) -> str:
    from chalicelib.domain.composer import koji_builds

    return koji_builds.mark_imported(job.payload["compose_id"])


def _import_failed(job: JobModel, _failure: Failure, ports: Ports) -> str:
    from chalicelib.domain.composer import koji_builds

    return koji_builds.give_back(job.payload["compose_id"], ports)


COMPOSES = "/api/image-builder-composer/v2/composes/"
JOB_RECORD_KIND = "compose-job"  # filed apart from IMS jobs: IMS lists never show them


def _describe_image(job: JobModel) -> Description:
    sent = job.request or {}
    requests = (sent.get("compose_request") or {}).get("image_requests") or []
    index = sent.get("image_request_index", 0)
    chosen = requests[index] if isinstance(index, int) and 0 <= index < len(requests) else {}
    label = str(chosen.get("image_type", "image")) if isinstance(chosen, dict) else "image"
    return Description(label, COMPOSES + str(job.payload.get("compose_id", "")))


def _describe_import(job: JobModel) -> Description:
    return Description("koji import", COMPOSES + str(job.payload.get("compose_id", "")))


COMPOSE_IMAGE = JobKind(
    COMPOSE_IMAGE_KIND,
    _message,
    announce_success=_image_built,
    failed=_image_failed,
    face="composer",
    record_kind=JOB_RECORD_KIND,
    describe=_describe_image,
)
KOJI_IMPORT = JobKind(
    "koji-import",
    _import_message,
    announce_success=_imported,
    failed=_import_failed,
    face="composer",
    record_kind=JOB_RECORD_KIND,
    describe=_describe_import,
)
KINDS = (COMPOSE_IMAGE, KOJI_IMPORT)
