"""The Cachito face's job kind on the build core: ``cachito-request``. A request is a job: the
core dispatches it to a build host of ``settings.cachito_arch`` that runs job type
``cachito`` (builders/cachito/run.py), through the same state machine and queues as images.
A stored request is started with ``request_jobs.begin_request(request, ports)``.

What the job's events mean to the request:
- each progress report with a ``reason`` is an intermediate ``in_progress`` state, so the
  request's ``updated`` moves while it runs (atomic-reactor's client waits an hour from the
  last change);
- success records the bundle (its sha256 once, with the ETag and size S3 gave it) and the
  package data document, then the request is ``complete``;
- a failure is ``failed`` with Cachito's ``error_origin``/``error_type``: the host's text is
  ``<ErrorType>: <message>`` (builders/cachito/errors.py), a client error travelling as
  BuildFailed; anything else is Cachito's ``UnknownError``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from chalicelib.adapters.cachito_models import CachitoRequestModel
from chalicelib.adapters.models import JobModel
from chalicelib.domain.builds.kinds import Description, JobKind, Ports
from chalicelib.domain.cachito import request_records
from chalicelib.host_protocol import BuildOutput, Failure, FailureCode, MediaType, Progress

REQUEST_KIND = "cachito-request"
JOB_RECORD_KIND = "cachito-job"  # its own list partition: IMS lists never show these jobs
JOB_TYPE = "cachito"  # what the host runs
CACHE_PREFIX = "cachito-cache/"
UNKNOWN_ERROR = "An unknown error occurred"
#: what a host's failure text starts with when it names Cachito's error class
_ERROR_TYPE = re.compile(r"^(?P<type>[A-Z][A-Za-z]+): (?P<text>.+)$", re.S)
#: Kiln's own failures and the Cachito error type a request shows for each
_CORE_ERRORS = {
    FailureCode.NO_BUILD_NODE: "WorkerUnavailable",
    FailureCode.HOST_SILENT: "WorkerUnavailable",
    FailureCode.NOT_STARTED: "WorkerUnavailable",
    FailureCode.UNSUPPORTED_ARCH: "WorkerUnavailable",
    FailureCode.PROTOCOL_MISMATCH: "WorkerUnavailable",
    FailureCode.CANCELLED: "RequestCancelled",
}


def artifact_prefix(request_id: int) -> str:
    return f"cachito/requests/{request_id}/"


@dataclasses.dataclass
class CachitoJob:
    """The payload of a Cachito request's job: which request it runs."""

    request_id: int

    @classmethod
    def of(cls, job: JobModel) -> CachitoJob:
        return cls(request_id=int(job.payload["request_id"]))


def _message(job: JobModel, ports: Ports) -> dict[str, Any]:
    request_id = CachitoJob.of(job).request_id
    request = request_records.find(request_id)
    if request is None:
        raise LookupError(f"Cachito request {request_id} is gone")
    settings = ports.settings
    return {
        "artifact_prefix": artifact_prefix(request_id),
        "source_request": {
            "request_id": request_id,
            "repo": request.repo,
            "ref": request.ref,
            "pkg_managers": list(request.pkg_managers or []),
            "packages": dict(request.packages_spec or {}),
            "flags": list(request.flags or []),
            "dependency_replacements": list(request.dependency_replacements or []),
            "options": {
                "pip_index_url": settings.cachito_pip_index_url,
                "npm_registry": settings.cachito_npm_registry,
                "goproxy": settings.cachito_goproxy,
                "gosumdb": settings.cachito_gosumdb,
                "allow_cidrs": settings.cachito_allow,
            },
            "limits": {
                "max_dependencies": settings.cachito_max_dependencies,
                "max_bytes": settings.cachito_max_bytes,
                "max_source_bytes": settings.cachito_max_source_bytes,
            },
            "cache_prefix": CACHE_PREFIX,
        },
    }


def _progressed(job: JobModel, progress: Progress, ports: Ports) -> str:
    if not progress.reason:
        return ""
    request_id = CachitoJob.of(job).request_id
    moved = request_records.progress(request_id, progress.reason)
    return f"request {request_id}: {progress.reason}" if moved else ""


def _record_success(job: JobModel, output: BuildOutput, ports: Ports) -> dict[str, Any]:
    """The bundle and the package data become the request's; then it is complete."""
    request_id = CachitoJob.of(job).request_id
    by_type = {artifact.type: artifact for artifact in output.artifacts}
    bundle, data = by_type.get(MediaType.SOURCE_BUNDLE), by_type.get(MediaType.PACKAGE_DATA)
    if bundle is None or data is None:
        request_records.fail(request_id, UNKNOWN_ERROR, "server", "UnknownError")
        return {}
    store = ports.artifacts
    head = store.head(bundle.key) or {}
    document = json.loads(store.read(data.key))
    packages = document.get("packages") or []
    dependencies = {
        (d.get("type"), d.get("name"), d.get("version"), bool(d.get("dev")))
        for package in packages
        for d in package.get("dependencies") or []
    }

    def complete(request: CachitoRequestModel) -> None:
        request.bundle_key = bundle.key
        request.bundle_sha256 = request.bundle_sha256 or bundle.sha256  # recorded once
        request.bundle_size = int(head.get("ContentLength", bundle.size))
        request.bundle_etag = str(head.get("ETag", ""))
        request.packages_key = data.key
        request.environment_variables = dict(document.get("environment_variables") or {})
        request.packages_count = len(packages)
        request.dependencies_count = len(dependencies)

    if not request_records.finish(request_id, "complete", "Completed successfully", complete):
        request = request_records.find(request_id)
        if request is None or request.state == "stale":  # expired meanwhile: keep nothing
            for artifact in output.artifacts:  # the bundle, its data, their provenance
                store.delete(artifact.key)
    return {}


def _failed(job: JobModel, failure: Failure, ports: Ports) -> str:
    request_id = CachitoJob.of(job).request_id
    reason, origin, error_type = cachito_error(failure)
    request_records.fail(request_id, reason, origin, error_type)
    return f"request {request_id}: failed ({error_type})"


def cachito_error(failure: Failure) -> tuple[str, str, str]:
    """(state_reason, error_origin, error_type) of a job's failure."""
    core = _CORE_ERRORS.get(failure.code)
    if core is not None:
        return failure.text, "server", core
    found = _ERROR_TYPE.match(failure.text)
    if found is None:
        return UNKNOWN_ERROR, "server", "UnknownError"
    origin = "client" if failure.code is FailureCode.BUILD_FAILED else "server"
    return found.group("text"), origin, found.group("type")


def _describe(job: JobModel) -> Description:
    sent = job.request or {}
    label = f"{sent.get('repo', '')}@{str(sent.get('ref', ''))[:12]}"
    return Description(label, f"/api/v1/requests/{job.payload.get('request_id', '')}")


CACHITO_REQUEST = JobKind(
    REQUEST_KIND,
    _message,
    record_success=_record_success,
    failed=_failed,
    progressed=_progressed,
    face="cachito",
    record_kind=JOB_RECORD_KIND,
    describe=_describe,
)
KINDS: tuple[JobKind, ...] = (CACHITO_REQUEST,)
