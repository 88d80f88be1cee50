"""The composer's job kind on the build core: ``compose-image``, one image of a compose.
``ComposeImageJob`` is its payload on a job record; only the composer's code reads it."""

from __future__ import annotations

import dataclasses
from typing import Any

from chalicelib.adapters.models import JobModel
from chalicelib.domain.builds.kinds import JobKind, Ports
from chalicelib.domain.glance import build_outputs

COMPOSE_IMAGE_KIND = "compose-image"
DISK_NAME = "disk"


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
    return {
        "image_root_archive_name": DISK_NAME,
        "recipe": {
            "bucket": ports.artifacts.bucket,
            "key": image.recipe_key,
            "sha256": image.recipe_sha256,
        },
        "upload": image.upload,
    }


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


COMPOSE_IMAGE = JobKind(COMPOSE_IMAGE_KIND, _message, announce_success=_in_glance)
KINDS = (COMPOSE_IMAGE,)
