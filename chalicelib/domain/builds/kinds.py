"""What a face tells the build core about one kind of job it makes (e.g. ``ims-create``,
``compose-image``). The core reads kinds only through the registry,
chalicelib/domain/job_kinds.py; it never asks which face made a job.

A kind supplies:
- ``message``: its part of the host's job message (the recipe to fetch, the image to
  customize, the upload target, SSH sessions...), as JobMessage fields;
- ``record_success``: what the build's output means to the face, before the job shows
  ``success`` (e.g. IMS records the image); returns changes to the job's payload;
  idempotent, since a result may be replayed;
- ``announce_success``: what follows once the job shows ``success`` (e.g. the image appears
  in Glance too); returns a line for the log; idempotent, since it runs again whenever the
  result is replayed (a replay is how a failed announcement is retried);
- ``failed`` and ``progressed``: what follows a failure or a step (nothing, by default);
- ``face``, ``record_kind`` and ``describe``: how Kiln's own builds list
  (domain/builds/overview.py) finds and shows a job of the kind: the face that made it, the
  list partition its records are filed under (each face keeps its jobs apart, so that its own
  lists never show another face's), a label, the face's own record and the image it made.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

from chalicelib.adapters.artifacts import ArtifactStore
from chalicelib.adapters.models import JobModel
from chalicelib.adapters.signing import Signer
from chalicelib.adapters.work_queue import WorkQueue
from chalicelib.adapters.workflows import Workflows
from chalicelib.config import Settings
from chalicelib.host_protocol import BuildOutput, Failure, Progress


class Ports(Protocol):
    """The adapters the core and the kinds' hooks use (chalicelib.container.Container)."""

    @property
    def artifacts(self) -> ArtifactStore: ...

    @property
    def workflows(self) -> Workflows: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def glance_imports(self) -> WorkQueue: ...

    @property
    def signer(self) -> Signer: ...


def _nothing(*_: Any) -> str:
    return ""


@dataclasses.dataclass(frozen=True)
class Description:
    """A job as a person looks for it, whichever face made it."""

    label: str  # e.g. the IMS image name, the composer image type, a Cachito repo@ref
    face_path: str  # the face's own record of it, from the API root
    image_id: str | None = None  # the IMS image it produced, if any


def _undescribed(job: JobModel) -> Description:
    return Description(job.job_kind, "")


@dataclasses.dataclass(frozen=True)
class JobKind:
    name: str
    message: Callable[[JobModel, Ports], dict[str, Any]]
    record_success: Callable[[JobModel, BuildOutput, Ports], dict[str, Any]] = (
        lambda _job, _output, _ports: {}
    )
    announce_success: Callable[[JobModel, Ports], str] = _nothing
    failed: Callable[[JobModel, Failure, Ports], str] = _nothing
    progressed: Callable[[JobModel, Progress, Ports], str] = _nothing
    face: str = "kiln"
    record_kind: str = "job"
    describe: Callable[[JobModel], Description] = _undescribed
