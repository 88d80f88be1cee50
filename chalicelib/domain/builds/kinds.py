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
- ``failed`` and ``progressed``: what follows a failure or a step (nothing, by default).
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
class JobKind:
    name: str
    message: Callable[[JobModel, Ports], dict[str, Any]]
    record_success: Callable[[JobModel, BuildOutput, Ports], dict[str, Any]] = (
        lambda _job, _output, _ports: {}
    )
    announce_success: Callable[[JobModel, Ports], str] = _nothing
    failed: Callable[[JobModel, Failure, Ports], str] = _nothing
    progressed: Callable[[JobModel, Progress, Ports], str] = _nothing
