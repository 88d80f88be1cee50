"""The protocol between Kiln and its build hosts: one module, imported by the service
(chalicelib/) and by the hosts (builders/). Standard library only, so a host needs nothing
else of chalicelib.

What travels:
- ``JobMessage``: the state machine's input, which the build queue carries to a host as
  ``{"job": <JobMessage>, "token": <task token>}``;
- ``Progress`` and ``NodeHeartbeat``: what a host sends on the build-events queue;
- ``BuildOutput``: a host's SendTaskSuccess output;
- ``Failure``: a host's SendTaskFailure ``error`` (``<Code>: <text>``, at most 256 characters,
  since Step Functions may drop the cause), and every way the service itself ends a job;
- ``JobResult``: the state machine's final message for each job on the build-events queue.

Failures travel as a ``FailureCode`` plus text: a face maps the code (never words in the text)
to its own error. ``decode_event`` refuses what it cannot read with ``ProtocolError``.
The prose version, with the host's duties, is docs/build-hosts.md.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

#: bumped when a message changes incompatibly; a host refuses a job of another version
PROTOCOL_VERSION = 2
ERROR_LIMIT = 256  # SendTaskFailure's error field


class MediaType:
    """Artifact types, as manifest.json and the build output list them."""

    ROOTFS_SQUASHFS = "application/vnd.cray.image.rootfs.squashfs"  # IMS's own values
    KERNEL = "application/vnd.cray.image.kernel"
    INITRD = "application/vnd.cray.image.initrd"
    BUILD_LOG = "text/plain"
    DISK_QCOW2 = "application/vnd.kiln.image.disk.qcow2"  # disk images, by format
    DISK_RAW = "application/vnd.kiln.image.disk.raw"
    DISK_VMDK = "application/vnd.kiln.image.disk.vmdk"
    DISK_PREFIX = "application/vnd.kiln.image.disk."
    PACKAGES_JSON = "application/vnd.kiln.packages+json"  # installed packages
    BUILD_PLAN_JSON = "application/vnd.kiln.build-plan+json"  # what to rebuild from
    MANIFEST_JSON = "application/json"
    SBOM_CYCLONEDX = "application/vnd.cyclonedx+json"  # CycloneDX 1.6 of a build's output
    SBOM_SPDX = "application/spdx+json"  # SPDX 2.3 of a build's output
    PROVENANCE = "application/vnd.dsse.envelope.v1+json"  # signed in-toto SLSA provenance
    SOURCE_BUNDLE = "application/vnd.kiln.cachito.bundle+gzip"  # a Cachito request's bundle
    PACKAGE_DATA = "application/vnd.kiln.cachito.packages+json"  # its packages.json


#: disk format -> its artifact type
DISK_TYPES = {"qcow2": MediaType.DISK_QCOW2, "raw": MediaType.DISK_RAW, "vmdk": MediaType.DISK_VMDK}


class FailureCode(enum.IntEnum):
    """Why a job ended in error. The name's CamelCase form is the wire spelling."""

    BUILD_FAILED = 1  # the recipe or the build failed; the text says what to change
    HOST_ERROR = 2  # the host itself failed
    CANCELLED = 3  # the job's owner cancelled it
    UPLOAD_FAILED = 4  # the image could not be uploaded to its target
    REGISTER_FAILED = 5  # the uploaded image could not be registered (e.g. as an AMI)
    UPLOAD_REFUSED = 6  # the service refused the upload target before building
    NO_BUILD_NODE = 7  # no registered, healthy build node serves the job
    HOST_SILENT = 8  # the host stopped heartbeating (States.Timeout) or never answered
    NOT_STARTED = 9  # the build execution could not be started
    UNSUPPORTED_ARCH = 10  # the state machine has no build queue for the arch
    PROTOCOL_MISMATCH = 11  # the host speaks another protocol version
    KOJI_INIT_FAILED = 12  # the Koji hub would not reserve the compose's build
    KOJI_IMPORT_FAILED = 13  # uploading to the Koji hub, or its import, failed

    @property
    def wire(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))

    @classmethod
    def from_wire(cls, name: str) -> FailureCode | None:
        return _BY_WIRE.get(name)


_BY_WIRE = {code.wire: code for code in FailureCode}
#: Step Functions' own errors for a task whose host went silent
_SILENT_ERRORS = frozenset({"States.Timeout", "States.HeartbeatTimeout"})
SILENT_TEXT = "the build host went silent (no heartbeat) on every attempt; the build was abandoned"


class ProtocolError(ValueError):
    """A message that does not follow this protocol."""


class ProtocolMismatch(ProtocolError):
    """A message of another protocol version."""


@dataclasses.dataclass(frozen=True)
class Failure:
    code: FailureCode
    text: str

    def to_error(self) -> str:
        """SendTaskFailure's ``error``: ``<Code>: <text>``, cut to 256 characters."""
        return f"{self.code.wire}: {self.text}"[:ERROR_LIMIT]

    @property
    def reason(self) -> str:
        """What a job record shows as its reason."""
        if self.code is FailureCode.HOST_SILENT:
            return self.text
        return f"{self.code.wire}: {self.text}"

    @classmethod
    def from_error(cls, error: str, cause: str | None = None) -> Failure:
        """A failure from SendTaskFailure's error (and cause, where Step Functions kept it)."""
        if error in _SILENT_ERRORS:
            return cls(FailureCode.HOST_SILENT, SILENT_TEXT)
        name, _, text = error.partition(": ")
        code = FailureCode.from_wire(name)
        if code is None:  # not Kiln's spelling: a host of another kind, or Step Functions
            return cls(FailureCode.HOST_ERROR, f"{error}: {cause}" if cause else error)
        return cls(code, f"{text}: {cause}" if cause and cause not in text else text)


class Stage(enum.StrEnum):
    """The stages a job's time is counted in (``BuildOutput.timings``; ``queue_wait`` is the
    service's: from the job's creation to the host's first report)."""

    QUEUE_WAIT = "queue_wait"
    FETCH = "fetch"  # the recipe, the source image, the repository
    RESOLVE = "resolve"  # the build plan and its cache lookup
    BUILD = "build"
    PACKAGE = "package"  # publishing: artifacts, SBOMs and the manifest to S3
    UPLOAD = "upload"  # to the job's upload target (an AMI, an S3 bucket...)


@dataclasses.dataclass(frozen=True)
class ObjectRef:
    """An object in S3 and the sha256 it must have (empty: not checked)."""

    bucket: str
    key: str
    sha256: str | None = None


@dataclasses.dataclass(frozen=True)
class JobMessage:
    """What a host gets for one job. The core fills the first block for every job; the job
    kind's face fills the rest (see chalicelib/domain/job_kinds.py)."""

    job_id: str
    kind: str  # the job kind, e.g. ims-create, compose-image (for logs; hosts run job_type)
    job_type: str  # what the host runs: "create" or "customize"
    tenant: str
    arch: str
    recipe_type: str
    bucket: str
    image_id: str  # where the host publishes: artifact_prefix + manifest.json
    artifact_prefix: str
    log_key: str
    log_chunk_prefix: str
    cancel_key: str
    source_date_epoch: int
    protocol: int = PROTOCOL_VERSION
    # what the job kind adds
    recipe: dict[str, Any] = dataclasses.field(default_factory=dict)  # ObjectRef fields
    template_dictionary: dict[str, str] = dataclasses.field(default_factory=dict)
    image_root_archive_name: str = "image"
    kernel_file_name: str = "vmlinuz"
    initrd_file_name: str = "initrd"
    enable_debug: bool = False
    public_key: str = ""
    ssh_containers: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    user_wait_seconds: int = 3600
    source_image: dict[str, Any] | None = None  # customize: {image_id, manifest_key, artifacts}
    upload: dict[str, Any] | None = None  # {"type", "options"}
    # a Cachito request (job type "cachito"): repo, ref, pkg_managers, packages, flags,
    # dependency_replacements, options, limits, cache_prefix (builders/cachito/run.py)
    source_request: dict[str, Any] | None = None
    # a Koji import (job type "koji-import"): server, build_id, token, directory, bucket,
    # files [{key, filename, sha256}], CG metadata (builders/koji_import.py)
    koji_import: dict[str, Any] | None = None
    # the content-addressed build cache (docs/build-cache.md): where entries live, and
    # whether this job may be served from it (False: a fresh build was asked for)
    cache_prefix: str = ""
    use_cache: bool = False
    # a rebuild check: build again and compare with these artifacts ({image_id, node,
    # artifacts [{key, type, size, sha256}]}); nothing is published (builders/compare.py)
    compare_with: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        return {key: value for key, value in body.items() if value is not None}

    @classmethod
    def from_dict(cls, body: Any) -> JobMessage:
        """The job a host received; ProtocolError if it is not one of this version."""
        if not isinstance(body, dict):
            raise ProtocolError("a job message is a JSON object")
        version = body.get("protocol", PROTOCOL_VERSION)
        if version != PROTOCOL_VERSION:
            raise ProtocolMismatch(f"job protocol {version}, this host speaks {PROTOCOL_VERSION}")
        return cls(**_known(cls, body, "job message"))


@dataclasses.dataclass(frozen=True)
class Progress:
    job_id: str
    status: str
    node: str = ""
    time: float | None = None  # when the host took the step (epoch seconds)
    ssh_containers: list[dict[str, Any]] | None = None
    upload_status: dict[str, Any] | None = None
    reason: str | None = None  # what the step is doing, in words (a Cachito state_reason)
    type: str = "progress"
    protocol: int = PROTOCOL_VERSION


@dataclasses.dataclass(frozen=True)
class NodeHeartbeat:
    xname: str
    arch: str
    recipe_types: list[str] = dataclasses.field(default_factory=list)
    job_types: list[str] = dataclasses.field(default_factory=lambda: ["create"])
    accepting: bool = True
    current_job: str | None = None
    time: float | None = None  # when the host sent it (default: when it arrives)
    slots: int = 1  # jobs the host runs at once
    type: str = "node_heartbeat"
    protocol: int = PROTOCOL_VERSION


@dataclasses.dataclass(frozen=True)
class Artifact:
    key: str
    type: str
    size: int = 0
    sha256: str = ""


@dataclasses.dataclass(frozen=True)
class BuildOutput:
    """SendTaskSuccess's output."""

    image_id: str = ""
    artifacts: list[Artifact] = dataclasses.field(default_factory=list)
    manifest: dict[str, Any] = dataclasses.field(default_factory=dict)  # {key, etag, sha256}
    log_key: str = ""
    node: str = ""
    build_seconds: float = 0.0
    answered_at: float | None = None
    upload_status: dict[str, Any] | None = None
    # seconds per stage on the host (Stage values), and when the host took the job
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    started_at: float | None = None
    # the build cache: {"key": plan digest, "hit": bool, "prefix": where the artifacts are,
    # "source_job": the job that built them (a hit)}; None: the job is not cacheable
    cache: dict[str, Any] | None = None
    # a rebuild check's verdict: {"reproducible": bool, "node", "artifacts": [...], "summary"}
    comparison: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        return {key: value for key, value in body.items() if value is not None}

    @classmethod
    def from_dict(cls, body: Any) -> BuildOutput:
        if not isinstance(body, dict):
            raise ProtocolError("a build output is a JSON object")
        fields = _known(cls, body, "build output")
        artifacts = fields.get("artifacts") or []
        if not isinstance(artifacts, list):
            raise ProtocolError("build output artifacts must be a list")
        fields["artifacts"] = [Artifact(**_known(Artifact, a, "artifact")) for a in artifacts]
        return cls(**fields)


@dataclasses.dataclass(frozen=True)
class JobResult:
    """The state machine's last word on a job: its host's output, or a failure."""

    job_id: str
    output: BuildOutput | None
    failure: Failure | None
    type: str = "result"


Event = Progress | NodeHeartbeat | JobResult


def decode_event(body: Any) -> Event:
    """A build-events message; ProtocolError for anything else."""
    if not isinstance(body, dict):
        raise ProtocolError("a build event is a JSON object")
    kind = body.get("type")
    if kind == "progress":
        return Progress(**_known(Progress, body, "progress event"))
    if kind == "node_heartbeat":
        return NodeHeartbeat(**_known(NodeHeartbeat, body, "node heartbeat"))
    if kind == "result":
        job_id = _text(body, "job_id")
        if body.get("outcome") == "success":
            return JobResult(job_id, BuildOutput.from_dict(body.get("output")), None)
        error = body.get("error")
        if not isinstance(error, dict):
            raise ProtocolError("a failed result carries error {Error, Cause}")
        cause = error.get("Cause")
        failure = Failure.from_error(
            str(error.get("Error") or "build failed"), str(cause) if cause else None
        )
        return JobResult(job_id, None, failure)
    raise ProtocolError(f"unknown build event type {kind!r}")


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{name} must be a non-empty string")
    return value


def _known(cls: Any, body: Any, what: str) -> dict[str, Any]:
    """The fields of ``cls`` found in ``body``; ProtocolError for a missing required one."""
    if not isinstance(body, dict):
        raise ProtocolError(f"a {what} is a JSON object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    found = {name: body[name] for name in fields if name in body}
    missing = [
        name
        for name, f in fields.items()
        if name not in found
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ProtocolError(f"{what} lacks {', '.join(missing)}")
    return found
