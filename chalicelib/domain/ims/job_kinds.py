"""IMS's job kinds on the build core: ``ims-create`` (an image from a recipe) and
``ims-customize`` (an image from an image, over SSH). ``ImsJob`` is IMS's payload on a job
record; only IMS's code reads it."""

from __future__ import annotations

import dataclasses
from typing import Any

from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore, manifest_key
from chalicelib.adapters.models import ImageModel, JobModel, PublicKeyModel, RecipeModel
from chalicelib.domain.builds.kinds import Description, JobKind, Ports
from chalicelib.domain.glance import build_outputs
from chalicelib.domain.ims import artifact_links, images
from chalicelib.host_protocol import BuildOutput

CREATE_KIND, CUSTOMIZE_KIND = "ims-create", "ims-customize"
#: Kiln's extension: an image rebuilt from its job and compared (domain/ims/reproducibility.py)
REBUILD_CHECK_KIND = "ims-rebuild-check"
REBUILDABLE = (CREATE_KIND,)  # a customize job's image is a user's SSH session: not rebuilt


@dataclasses.dataclass
class ImsJob:
    """The fields of an IMS job that only IMS reads (its request, and the image it made)."""

    artifact_id: str  # the recipe (create) or the image (customize)
    public_key_id: str
    image_root_archive_name: str
    kernel_file_name: str = "vmlinuz"
    initrd_file_name: str = "initrd"
    kernel_parameters_file_name: str = "kernel-parameters"
    enable_debug: bool = False
    build_env_size: int = 15
    require_dkms: bool = False
    resultant_image_id: str | None = None

    @classmethod
    def of(cls, job: JobModel) -> ImsJob:
        return cls(**job.payload)

    def to_payload(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _message(job: JobModel, ports: Ports) -> dict[str, Any]:
    ims, store = ImsJob.of(job), ports.artifacts
    key = records.find(PublicKeyModel, ims.public_key_id) if ims.public_key_id else None
    message: dict[str, Any] = {
        "image_root_archive_name": ims.image_root_archive_name,
        "kernel_file_name": ims.kernel_file_name,
        "initrd_file_name": ims.initrd_file_name,
        "enable_debug": ims.enable_debug,
        "public_key": key.public_key if key is not None else "",
        "ssh_containers": [
            {"name": c["name"], "jail": bool(c.get("jail"))} for c in job.ssh_containers or []
        ],
        "user_wait_seconds": ports.settings.user_wait_seconds,
    }
    if job.job_kind == CUSTOMIZE_KIND:
        message["source_image"] = _source_image(job, ims, store)
        return message
    recipe = records.find(RecipeModel, ims.artifact_id)
    if recipe is not None:
        message["recipe"] = {
            "bucket": store.bucket,
            "key": store.key_of(recipe.link["path"]) if recipe.link else "",
            "sha256": recipe.archive_sha256,
        }
        message["template_dictionary"] = {i["key"]: i["value"] for i in recipe.template_dictionary}
        message["source_date_epoch"] = int(records.epoch(recipe.created))
    return message


def _source_image(job: JobModel, ims: ImsJob, store: ArtifactStore) -> dict[str, Any]:
    """A customize job's image: its manifest and the artifacts in it the job's tenant may read,
    by key (the host fetches those and nothing else)."""
    image = records.find(ImageModel, ims.artifact_id)
    manifest = store.own_key(image.link["path"]) if image and image.link else None
    if manifest is None or not artifact_links.may_link(manifest, job.tenant):
        return {"image_id": ims.artifact_id, "manifest_key": None, "artifacts": []}
    listed = artifact_links.manifest_artifacts(store, manifest, job.tenant)
    artifacts = [{k: a[k] for k in ("type", "key", "sha256")} for a in listed]
    return {"image_id": ims.artifact_id, "manifest_key": manifest, "artifacts": artifacts}


def _record_image(job: JobModel, output: BuildOutput, ports: Ports) -> dict[str, Any]:
    """The image the job built becomes an IMS image record (idempotent)."""
    image_id = job.planned_image_id
    link = {
        "path": ports.artifacts.url(manifest_key(image_id)),
        "etag": str(output.manifest.get("etag", "")),
        "type": "s3",
    }
    name = ImsJob.of(job).image_root_archive_name
    images.record_build(image_id, job.tenant, name, job.arch, link, job.id)
    return {"resultant_image_id": image_id}


def _in_glance(job: JobModel, ports: Ports) -> str:
    """The one registry: the image shows in Glance as well."""
    ims = ImsJob.of(job)
    return build_outputs.register(
        job,
        ims.image_root_archive_name,
        {"kiln_source": "ims", "kiln_ims_image_id": ims.resultant_image_id or job.planned_image_id},
        ports.glance_imports,
    )


def _describe(job: JobModel) -> Description:
    ims = ImsJob.of(job)
    return Description(
        ims.image_root_archive_name, f"/apis/ims/v3/jobs/{job.id}", ims.resultant_image_id
    )


CREATE = JobKind(CREATE_KIND, _message, _record_image, _in_glance, face="ims", describe=_describe)
CUSTOMIZE = JobKind(
    CUSTOMIZE_KIND, _message, _record_image, _in_glance, face="ims", describe=_describe
)
KINDS = (CREATE, CUSTOMIZE)
