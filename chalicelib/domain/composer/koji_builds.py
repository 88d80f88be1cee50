"""The composer's Koji target: a compose request's ``koji`` section, honoured as composer does.

1. At create, Kiln reserves the build N-V-R on the hub (``CGInitBuild``, the "init"); the
   compose shows ``koji_status.build_id`` from then on. A failed init fails every image at once.
2. The images build as any compose's do.
3. When every image has succeeded, one ``koji-import`` job goes through the build core to a
   build host (builders/koji_import.py), which uploads each image, its build log and its
   manifest to the hub and imports them as a content-generator build (``CGImport``) with the
   metadata made here. A failed image or import gives the reservation back (``CGRefundBuild``).

The compose is a success only when its images and the import are. The reservation (build id
and token) lives on the compose record, in ``koji``."""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import datetime
from typing import Any

from chalicelib import observability
from chalicelib.adapters import records
from chalicelib.adapters.artifacts import job_log_key
from chalicelib.adapters.koji_cg import ContentGenerator, HubAccess, KojiCGError, parse_hubs
from chalicelib.adapters.models import ComposeModel, JobModel
from chalicelib.domain.builds import dispatch
from chalicelib.domain.builds.job_records import KIND as JOB_KIND
from chalicelib.domain.builds.kinds import Ports
from chalicelib.domain.composer.job_kinds import JOB_RECORD_KIND
from chalicelib.errors import Conflict, InvalidComposeRequest, KojiNotConfigured
from chalicelib.host_protocol import PROTOCOL_VERSION, MediaType

KOJI_IMPORT_KIND = "koji-import"
JOB_TYPE = "koji-import"  # what a host runs for it
FIELDS = ("server", "task_id", "name", "version", "release")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+]*(-[A-Za-z0-9._+]+)*$")
_VERSION = re.compile(r"^[A-Za-z0-9._+~^]+$")  # Koji: no dash in version or release
_MAX = 200
#: composer's job errors for the Koji steps (its clienterrors)
KOJI_INIT_ERROR = (15, "Koji init failed")
KOJI_IMPORT_ERROR = (16, "Koji import failed")
KOJI_DEPENDENCY_ERROR = (13, "Koji build dependency failed")
#: what the buildroots say made the build
TOOL = {"name": "kiln-host", "version": f"protocol-{PROTOCOL_VERSION}"}


@dataclasses.dataclass(frozen=True)
class KojiTarget:
    server: str
    task_id: int
    name: str
    version: str
    release: str

    @property
    def nvr(self) -> str:
        return f"{self.name}-{self.version}-{self.release}"


def hubs(ports: Ports) -> dict[str, HubAccess]:
    return parse_hubs(ports.settings.koji_hubs)


def read(value: Any, known: dict[str, HubAccess]) -> KojiTarget | None:
    """The request's ``koji`` section, checked; None when there is none."""
    if value is None:
        return None
    if not known:
        raise KojiNotConfigured(
            "koji: this Kiln deployment has no Koji hub configured; leave out 'koji'"
        )
    if not isinstance(value, dict):
        raise InvalidComposeRequest(
            "koji must be an object: server, task_id, name, version, release"
        )
    unknown = sorted(set(value) - set(FIELDS))
    if unknown:
        raise InvalidComposeRequest(
            f"unknown field(s) {', '.join('koji.' + u for u in unknown)}; "
            f"allowed: {', '.join('koji.' + k for k in FIELDS)}"
        )
    missing = [f"koji.{k}" for k in FIELDS if value.get(k) is None]
    if missing:
        raise InvalidComposeRequest(f"{', '.join(missing)} required")
    server = value["server"]
    if not isinstance(server, str) or server.rstrip("/") not in known:
        raise KojiNotConfigured(
            f"koji.server {server!r} is not a Koji hub this deployment imports into "
            f"(configured: {', '.join(sorted(known))})"
        )
    task_id = value["task_id"]
    if isinstance(task_id, bool) or not isinstance(task_id, int) or task_id < 0:
        raise InvalidComposeRequest("koji.task_id must be a non-negative integer")
    for key, pattern, rule in (
        ("name", _NAME, "letters, digits and . _ + - (not at either end)"),
        ("version", _VERSION, "letters, digits and . _ + ~ ^ (no dash)"),
        ("release", _VERSION, "letters, digits and . _ + ~ ^ (no dash)"),
    ):
        part = value[key]
        if not isinstance(part, str) or len(part) > _MAX or not pattern.match(part):
            raise InvalidComposeRequest(f"koji.{key} must be {rule}, at most {_MAX} characters")
    return KojiTarget(
        server.rstrip("/"), task_id, value["name"], value["version"], value["release"]
    )


def reserve(target: KojiTarget, known: dict[str, HubAccess]) -> dict[str, Any]:
    """The compose's ``koji`` record: the target, and the reserved build or the init's error."""
    record: dict[str, Any] = dataclasses.asdict(target)
    hub = ContentGenerator(known[target.server])
    try:
        build_id, token = hub.init_build(target.name, target.version, target.release)
    except KojiCGError as exc:
        observability.logger().warning("Koji init failed", extra={"error": str(exc)})
        record["init"] = {"error": _error(KOJI_INIT_ERROR, str(exc))}
        return record
    finally:
        hub.close()
    record.update(build_id=build_id, token=token, init={"build_id": build_id})
    return record


def init_failure(compose: ComposeModel) -> str | None:
    """What the init said, when it failed."""
    koji = compose.koji or {}
    error = (koji.get("init") or {}).get("error")
    return str(error["details"]) if error else None


def _error(entry: tuple[int, str], details: str) -> dict[str, Any]:
    return {"id": entry[0], "reason": entry[1], "details": details}


# -- after the images ----------------------------------------------------------------------------
def images_succeeded(compose_id: str, builds: list[Any], ports: Ports) -> str:
    """Every image of a Koji compose has succeeded: start its import, once (a replayed result
    finds the job started, or starts the one the record names)."""
    planned: dict[str, JobModel] = {}

    def claim(compose: ComposeModel) -> None:
        koji = dict(compose.koji or {})
        if koji.get("import_job_id"):
            return
        job = _import_job(compose, builds)
        planned[job.id] = job
        compose.koji = {**koji, "import_job_id": job.id}

    compose = records.change_versioned(
        lambda: ComposeModel.get(compose_id, consistent_read=True), claim, f"compose {compose_id}"
    )
    job_id = compose.koji["import_job_id"]
    if job_id not in planned and records.find(JobModel, job_id) is not None:
        return ""  # started by an earlier delivery
    job = planned.get(job_id) or _import_job(compose, builds, job_id)
    try:
        dispatch.begin(job, ports)
    except Conflict:  # a concurrent delivery stored it first
        return ""
    return f"Koji import {job_id} started"


def _import_job(compose: ComposeModel, builds: list[Any], job_id: str | None = None) -> JobModel:
    job = JobModel(
        status="creating",
        job_kind=KOJI_IMPORT_KIND,
        payload={"compose_id": compose.id},
        job_type=JOB_TYPE,
        arch=builds[0].job.arch,
        recipe_type=None,
        planned_image_id=f"koji-import-{compose.id}",
        unfinished=JOB_KIND,
    )
    # filed with the compose's image jobs: IMS lists never show it
    return records.stamp(job, compose.tenant, JOB_RECORD_KIND, record_id=job_id)


def give_back(compose_id: str, ports: Ports) -> str:
    """The compose failed: its reserved build is refunded (once; a hub that cannot be reached
    keeps the reservation, which the hub's own cleanup ends)."""
    compose = records.find(ComposeModel, compose_id)
    koji = (compose.koji if compose is not None else None) or {}
    if not koji.get("token") or koji.get("refunded") or koji.get("imported"):
        return ""
    access = hubs(ports).get(koji["server"])
    if access is None:
        return ""
    hub = ContentGenerator(access)
    try:
        hub.refund(int(koji["build_id"]), str(koji["token"]))
    except KojiCGError as exc:
        return f"Koji build {koji['build_id']} not refunded: {exc}"
    finally:
        hub.close()

    def mark(record: ComposeModel) -> None:
        record.koji = {**(record.koji or {}), "refunded": True}

    records.change_versioned(
        lambda: ComposeModel.get(compose_id, consistent_read=True), mark, f"compose {compose_id}"
    )
    return f"Koji build {koji['build_id']} refunded"


def mark_imported(compose_id: str) -> str:
    def mark(record: ComposeModel) -> None:
        record.koji = {**(record.koji or {}), "imported": True}

    compose = records.change_versioned(
        lambda: ComposeModel.get(compose_id, consistent_read=True), mark, f"compose {compose_id}"
    )
    return f"Koji build {compose.koji.get('build_id')} imported"


# -- the import job's message -------------------------------------------------------------------
def import_message(
    compose: ComposeModel, builds: list[Any], bucket: str, content_generator: str
) -> dict[str, Any]:
    """What the host needs: where to upload, the files, and the CG metadata (the host fills in
    each output's size and MD5 as it uploads it)."""
    koji = compose.koji or {}
    target = KojiTarget(*(koji[k] for k in FIELDS))
    buildroots, outputs, files, typeinfo = [], [], [], {}
    for index, build in enumerate(builds, start=1):
        job = build.job
        arch, image_type = job.arch, build.image_type
        disk = next(a for a in job.artifacts or [] if a["type"].startswith(MediaType.DISK_PREFIX))
        ext = disk["type"].removeprefix(MediaType.DISK_PREFIX)
        stem = f"{target.nvr}.{arch}.{image_type}"
        image_info = {"arch": arch, "image_type": image_type, "kiln_job_id": job.id}
        typeinfo[f"{stem}.{ext}"] = image_info
        buildroots.append(_buildroot(index, compose, job, content_generator))
        found: list[tuple[dict[str, Any], str, str, dict[str, Any] | None]] = [
            (disk, f"{stem}.{ext}", "image", {"image": image_info})
        ]
        plan = next(
            (a for a in job.artifacts or [] if a["type"] == MediaType.BUILD_PLAN_JSON), None
        )
        if plan is not None:
            found.append((plan, f"{stem}.manifest.json", "image", {"image": {"arch": arch}}))
        log = {"key": job_log_key(job.id), "sha256": "", "size": 0}
        found.append((log, f"{stem}.log", "log", None))
        for artifact, filename, kind, extra in found:
            files.append(
                {"key": artifact["key"], "filename": filename, "sha256": artifact["sha256"]}
            )
            output = {
                "buildroot_id": index,
                "filename": filename,
                "filesize": 0,  # the host's upload fills in size and checksum
                "arch": "noarch" if kind == "log" else arch,
                "checksum_type": "md5",
                "checksum": "",
                "type": kind,
            }
            if extra:
                output["extra"] = extra
            outputs.append(output)
    metadata = {
        "metadata_version": 0,
        "build": {
            "name": target.name,
            "version": target.version,
            "release": target.release,
            "source": f"kiln:composes/{compose.id}",
            "start_time": _epoch(compose.created),
            "end_time": int(time.time()),
            "build_id": koji["build_id"],
            "task_id": target.task_id,
            "extra": {"typeinfo": {"image": typeinfo}, "kiln": {"compose_id": compose.id}},
        },
        "buildroots": buildroots,
        "output": outputs,
    }
    return {
        "server": target.server,
        "build_id": koji["build_id"],
        "token": koji["token"],
        "directory": f"kiln-cg/{compose.id}",
        "metadata": metadata,
        "files": files,
        "bucket": bucket,
    }


def _buildroot(
    index: int, compose: ComposeModel, job: JobModel, content_generator: str
) -> dict[str, Any]:
    return {
        "id": index,
        "host": {"os": compose.distribution, "arch": job.arch},
        # the name the hub granted (the one the build was reserved under)
        "content_generator": {"name": content_generator, "version": TOOL["version"]},
        "container": {"type": "chroot", "arch": job.arch},
        "tools": [TOOL],
        "components": [],  # Debian packages are not RPMs; the manifest lists them
        "extra": {"kiln": {"job_id": job.id, "build_node": job.build_node or ""}},
    }


def _epoch(created: str) -> int:
    return int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
