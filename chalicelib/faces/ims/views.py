"""Records as IMS shows them (plus Kiln's documented extension fields)."""

from __future__ import annotations

import datetime
from typing import Any

from chalicelib.adapters.models import (
    BuildNodeModel,
    ImageModel,
    JobModel,
    PublicKeyModel,
    RecipeModel,
)
from chalicelib.domain.builds import nodes as build_nodes
from chalicelib.domain.ims import rebuild_check_kind
from chalicelib.domain.ims.job_kinds import ImsJob


def recipe(r: RecipeModel) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": r.id,
        "created": r.created,
        "name": r.name,
        "recipe_type": r.recipe_type,
        "linux_distribution": r.linux_distribution,
        "arch": r.arch,
        "require_dkms": r.require_dkms,
        "template_dictionary": r.template_dictionary,
        "archive": {
            "status": r.archive_status,
            "sha256": r.archive_sha256,
            "size": r.archive_size,
            "reason": r.archive_reason,
        },
    }
    if r.link:
        body["link"] = r.link
    return _with_deleted(body, r.deleted)


def _with_deleted(body: dict[str, Any], deleted: str | None) -> dict[str, Any]:
    if deleted:
        body["deleted"] = deleted
    return body


def image(i: ImageModel) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": i.id,
        "created": i.created,
        "name": i.name,
        "arch": i.arch,
        "metadata": i.metadata or {},
    }
    if i.link:
        body["link"] = i.link
    checked = rebuild_check_kind.shown(i)  # Kiln's extension: absent until a rebuild check
    if checked is not None:
        body["reproducibility"] = checked
    return _with_deleted(body, i.deleted)


def public_key(k: PublicKeyModel) -> dict[str, Any]:
    body = {"id": k.id, "created": k.created, "name": k.name, "public_key": k.public_key}
    return _with_deleted(body, k.deleted)


def job(j: JobModel) -> dict[str, Any]:
    ims = ImsJob.of(j)
    return {
        "id": j.id,
        "created": j.created,
        "job_type": j.job_type,
        "image_root_archive_name": ims.image_root_archive_name,
        "kernel_file_name": ims.kernel_file_name,
        "initrd_file_name": ims.initrd_file_name,
        "kernel_parameters_file_name": ims.kernel_parameters_file_name,
        "status": j.status,
        "artifact_id": ims.artifact_id,
        "public_key_id": ims.public_key_id,
        "kubernetes_job": f"kiln-build-{j.id}",
        "kubernetes_service": None,
        "kubernetes_configmap": None,
        "kubernetes_namespace": "kiln",
        "ssh_containers": j.ssh_containers or [],
        "enable_debug": ims.enable_debug,
        "resultant_image_id": ims.resultant_image_id,
        "build_env_size": ims.build_env_size,
        "arch": j.arch,
        "require_dkms": ims.require_dkms,
        # Kiln extensions
        "status_reason": j.status_reason,
        "build_node": j.build_node,
        "finished": j.finished,
        # stages, instance-seconds and cost once it ended (docs/build-cost.md)
        "timing": {
            "host_started": j.host_started,
            "host_answered": j.host_answered,
            **(j.timing or {}),
        },
    }


def build_node(n: BuildNodeModel, fresh_seconds: int) -> dict[str, Any]:
    """IMS shows the xname; Kiln adds what the node reported and whether it is healthy."""
    return {
        "xname": n.xname,
        "registered": n.registered_at,
        "status": build_nodes.status(n, fresh_seconds),
        "arch": n.arch,
        "recipe_types": n.recipe_types,
        "job_types": n.job_types,
        "last_heartbeat": _iso(n.last_heartbeat) if n.last_heartbeat else None,
        "current_job": n.current_job,
    }


#: what IMS reports for a status it could not find out
UNKNOWN = "Unknown"


def build_node_status(n: BuildNodeModel, fresh_seconds: int, now: float) -> dict[str, Any]:
    """IMS's RemoteBuildNodeStatus, field for field. IMS gets it over SSH; Kiln from the node's
    heartbeats (docs/build-hosts.md, 'Node status'): the connection is the heartbeat, and
    instead of podman (Kiln hosts have none) the builders the host advertised."""
    ago = build_nodes.seconds_since_heartbeat(n, now)
    fresh = build_nodes.healthy(n, fresh_seconds, now)
    builders = ", ".join(n.recipe_types or []) or "none"
    if ago is None:
        ssh, podman = "Unable to connect to node. Error: never heard from", UNKNOWN
    elif fresh:
        ssh, podman = (
            f"Connection established (heartbeat {ago} s ago).",
            f"Builders present: {builders}",
        )
    else:
        ssh = f"Unable to connect to node. Error: no heartbeat for {ago} s"
        podman = f"Builders last advertised: {builders}"
    jobs = build_nodes.running_jobs(n, fresh_seconds, now)
    return {
        "xname": n.xname,
        "sshStatus": ssh,
        "podmanStatus": podman,
        "nodeArch": n.arch or UNKNOWN,
        "numCurrentJobs": -1 if jobs is None else jobs,
        "ableToRunJobs": build_nodes.able_to_run_jobs(n, fresh_seconds, now),
    }


def _iso(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
