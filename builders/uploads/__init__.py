"""Upload targets: where a composer job's image goes after it is published to S3.

A job message may carry ``"upload": {"type": ..., "options": {...}}``; ``type`` picks a target
module here (``aws.s3``: builders/uploads/aws_s3.py, ``aws``: builders/uploads/aws_ec2.py).
Each target checks its options before the build (``check``) and does the upload after the
artifacts are published (``upload``), returning the options of its ``upload_status``.
A target raises BuildError (or lets a botocore error through) when the upload fails; ``run``
turns that into ``upload to <type> failed: <reason>``, short enough for SendTaskFailure, with
the code the host answers: UPLOAD_FAILED, or the target's own (REGISTER_FAILED: the image was
uploaded but could not be registered). A bad ``upload`` field fails with UPLOAD_FAILED too.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from builders.backends.base import DISK_TYPES, BuildError
from builders.uploads import aws_ec2, aws_s3
from chalicelib.host_protocol import ERROR_LIMIT, FailureCode

#: upload type -> target module (``check(options)``, ``upload(ctx, options) -> dict``)
TARGETS: dict[str, ModuleType] = {"aws": aws_ec2, "aws.s3": aws_s3}
DISK_TYPE_VALUES = frozenset(DISK_TYPES.values())
UPLOAD_FAILED = FailureCode.UPLOAD_FAILED

#: (service, region) -> a boto3 client
ClientFactory = Callable[[str, str], Any]


@dataclasses.dataclass(frozen=True)
class Disk:
    """A published disk artifact: its key in the job's bucket and the local file."""

    key: str
    type: str
    path: Path
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class UploadContext:
    job_id: str
    arch: str  # "x86_64" or "aarch64"
    bucket: str  # the job's bucket, where the disks are published
    disks: list[Disk]  # the published disk artifacts, in publish order
    clients: ClientFactory
    log: Callable[[str], None] = print
    progress: Callable[[str], None] = lambda status: None  # a progress status (upload running)
    check_interrupted: Callable[[], None] = lambda: None  # raises if the job must stop now

    def disk(self, wanted: str | None = None) -> Disk:
        """The first published disk (of type ``wanted`` if given); BuildError if none."""
        for disk in self.disks:
            if wanted is None or disk.type == wanted:
                return disk
        if wanted is None:
            raise BuildError("the build made no disk image (the recipe needs disk: formats)")
        raise BuildError(f"the build made no {wanted} disk image (the recipe needs that format)")


class Spec:
    """A job's ``upload`` field, checked: its type, target and options."""

    def __init__(self, value: Any) -> None:
        if not isinstance(value, dict) or not isinstance(value.get("type"), str):
            raise refused("?", 'upload must be {"type": ..., "options": {...}}')
        self.type: str = value["type"]
        options = {} if value.get("options") is None else value["options"]
        if not isinstance(options, dict):
            raise refused(self.type, "options must be an object")
        self.options: dict[str, Any] = options
        target = TARGETS.get(self.type)
        if target is None:
            known = ", ".join(sorted(TARGETS))
            raise refused(self.type, f"this host has no such target ({known})")
        self.target = target
        try:
            target.check(self.options)
        except BuildError as exc:
            raise refused(self.type, str(exc)) from None

    def status(self, status: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """The job's ``upload_status``: type, status (running, success), options."""
        return {"type": self.type, "status": status, "options": options or {}}


def parse(value: Any) -> Spec | None:
    """The job's upload, or None when it has none; BuildError when it cannot be done."""
    return None if value is None else Spec(value)


def run(spec: Spec, ctx: UploadContext) -> dict[str, Any]:
    """Upload; returns the success ``upload_status``. BuildError (UPLOAD_FAILED, or the
    target's REGISTER_FAILED) when the upload fails; the job's interruptions (whatever
    ``ctx.check_interrupted`` raises) pass through."""
    try:
        options = spec.target.upload(ctx, spec.options)
    except (BuildError, BotoCoreError, ClientError, OSError, ValueError) as exc:
        code = UPLOAD_FAILED
        if isinstance(exc, BuildError) and exc.code is not FailureCode.BUILD_FAILED:
            code = exc.code  # the target said which part failed
        reason = str(exc) or type(exc).__name__
        raise BuildError(failure(spec.type, reason, code), code=code) from exc
    return spec.status("success", options)


def refused(kind: str, reason: str) -> BuildError:
    """The failure of a job whose ``upload`` cannot be done (checked before the build)."""
    return BuildError(failure(kind, reason), code=UPLOAD_FAILED)


def failure(kind: str, reason: str, code: FailureCode = UPLOAD_FAILED) -> str:
    """``upload to <kind> failed: <reason>``, cut so that the host's answer, ``<Code>: `` and
    this, fits SendTaskFailure's error field."""
    head = f"upload to {kind} failed: "
    room = ERROR_LIMIT - len(f"{code.wire}: ") - len(head)
    reason = " ".join(reason.split())
    return head + (reason if len(reason) <= room else reason[: room - 3] + "...")


class Clients:
    """boto3 clients per (service, region), made on first use. ``endpoint_url`` (the host's
    AWS_ENDPOINT_URL, e.g. moto locally) applies to every client, as it does to the agent's."""

    def __init__(self, endpoint_url: str | None = None) -> None:
        self._endpoint_url = endpoint_url
        self._made: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def __call__(self, service: str, region: str) -> Any:
        import boto3
        from botocore.config import Config

        with self._lock:
            if (service, region) not in self._made:
                session = boto3.session.Session(region_name=region)
                self._made[(service, region)] = session.client(
                    service,
                    endpoint_url=self._endpoint_url,
                    config=Config(
                        retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=32
                    ),
                )
            return self._made[(service, region)]
