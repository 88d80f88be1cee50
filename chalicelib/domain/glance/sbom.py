"""Kiln's extension ``GET /v2/images/{image_id}/sbom``: the SBOM of an image a build registered
(build_outputs.py), as the build host wrote it beside the image (builders/sbom.py).

The SBOM is found through the build's job record, never through the image's properties (its
owner may change those): the image must be the one the job registered (its id is derived from
the job's, and its data belongs to the build), and the job's artifacts name the SBOM's key. An
image the caller may not see, or one without an SBOM, is 404 (docs/sbom.md)."""

from __future__ import annotations

import dataclasses

from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore, ObjectMissing
from chalicelib.adapters.glance_models import GlanceImageModel
from chalicelib.adapters.models import JobModel
from chalicelib.auth import Principal
from chalicelib.domain.glance import access, build_outputs
from chalicelib.errors import BadRequest, NotFound
from chalicelib.host_protocol import MediaType

#: ``?format=`` -> the artifact type of the build's SBOM in that format
FORMATS = {"cyclonedx-1.6": MediaType.SBOM_CYCLONEDX, "spdx-2.3": MediaType.SBOM_SPDX}
DEFAULT_FORMAT = "cyclonedx-1.6"


@dataclasses.dataclass(frozen=True)
class Sbom:
    media_type: str  # application/vnd.cyclonedx+json or application/spdx+json
    text: str  # the document, as the build host wrote it


def media_type_of(format_name: str | None) -> str:
    """The artifact type of ``?format=`` (the default when absent); BadRequest (400) else."""
    name = DEFAULT_FORMAT if format_name is None else format_name
    if name not in FORMATS:
        known = ", ".join(FORMATS)
        raise BadRequest(f"Unknown SBOM format '{name[:64]}': use one of {known}")
    return FORMATS[name]


def sbom(
    image_id: str, format_name: str | None, principal: Principal, store: ArtifactStore
) -> Sbom:
    """The SBOM of a build's image the caller may see, in the format asked for."""
    media_type = media_type_of(format_name)
    image = access.visible(image_id, principal)
    key = _sbom_key(image, media_type)
    if key is None:
        raise NotFound(f"Image {image_id} has no {_name(media_type)} SBOM")
    try:
        data = store.read(key)
    except ObjectMissing as exc:
        raise NotFound(f"Image {image_id} has no {_name(media_type)} SBOM") from exc
    return Sbom(media_type, data.decode("utf-8", errors="replace"))


def _sbom_key(image: GlanceImageModel, media_type: str) -> str | None:
    job_id = (image.properties or {}).get("kiln_job_id")
    if not isinstance(job_id, str) or image.data_owned is not False:
        return None  # not a build's image
    if image.id != build_outputs.glance_id(job_id):
        return None  # a property its owner set, not the build's registration
    job = records.find(JobModel, job_id)
    if job is None or job.status != "success":
        return None
    for artifact in job.artifacts or []:
        if artifact.get("type") == media_type and artifact.get("key"):
            return str(artifact["key"])
    return None


def _name(media_type: str) -> str:
    return next(name for name, kind in FORMATS.items() if kind == media_type)
