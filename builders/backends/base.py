"""The one interface every build backend implements.

The agent (builders/agent.py) owns queues, heartbeats, S3 and Step Functions; a backend only
turns an unpacked recipe into files in ``ctx.out_dir``. It must not talk to AWS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from chalicelib.host_protocol import DISK_TYPES as DISK_TYPES  # format -> artifact type
from chalicelib.host_protocol import FailureCode, MediaType

# The artifact types (host_protocol.MediaType), by the names the backends import.
ROOTFS_SQUASHFS = MediaType.ROOTFS_SQUASHFS  # IMS's own values
KERNEL = MediaType.KERNEL
INITRD = MediaType.INITRD
BUILD_LOG = MediaType.BUILD_LOG
DISK_QCOW2 = MediaType.DISK_QCOW2  # disk images (kiln-debian recipes with ``disk:``)
DISK_RAW = MediaType.DISK_RAW
DISK_VMDK = MediaType.DISK_VMDK
PACKAGES_JSON = MediaType.PACKAGES_JSON  # build metadata of kiln-debian builds (docs/recipes.md)
BUILD_PLAN_JSON = MediaType.BUILD_PLAN_JSON
SBOM_CYCLONEDX = MediaType.SBOM_CYCLONEDX  # the image's SBOMs (builders/sbom.py)
SBOM_SPDX = MediaType.SBOM_SPDX


class BuildError(Exception):
    """A build failed for a reason the user can act on (the message says what to change).

    ``root`` is the half-built image root the backend left behind, if any: with
    ``enable_debug`` the host opens an SSH session on it before answering the failure.
    ``code`` is the failure's code in the host's answer (``<Code>: <message>``): a build's
    failures are BUILD_FAILED; an upload's UPLOAD_FAILED or REGISTER_FAILED (builders/uploads).
    """

    def __init__(
        self,
        message: str,
        root: Path | None = None,
        code: FailureCode = FailureCode.BUILD_FAILED,
    ) -> None:
        super().__init__(message)
        self.root = root
        self.code = code


@dataclasses.dataclass(frozen=True)
class BuildContext:
    job_id: str
    arch: str  # "x86_64" or "aarch64" (IMS spelling)
    recipe_type: str
    recipe_dir: Path  # the recipe archive, already unpacked and checked
    work_dir: Path  # private scratch space for this job, removed afterwards
    out_dir: Path  # put the artifacts here
    template: dict[str, str]  # template_dictionary, already as a dict
    source_date_epoch: int  # fixed per recipe: identical inputs give identical bytes
    image_root_archive_name: str  # base name of the rootfs artifact (no extension)
    kernel_file_name: str = "vmlinuz"
    initrd_file_name: str = "initrd"
    log: Callable[[str], None] = print  # one line of build log
    should_stop: Callable[[], bool] = lambda: False  # True once the host is told to stop


@dataclasses.dataclass(frozen=True)
class Artifact:
    path: Path  # a file inside ctx.out_dir
    type: str  # one of the IMS artifact types above


class Backend(Protocol):
    #: recipe_type values this backend builds
    recipe_types: tuple[str, ...]

    def unavailable_reason(self, arch: str) -> str | None:
        """None when this host can build for ``arch``; else why not (missing tool, no emulation)."""

    def wait_for_repos(self, ctx: BuildContext) -> None:
        """Block until the package repositories the recipe needs answer; BuildError if never."""

    def build(self, ctx: BuildContext) -> list[Artifact]:
        """Build; return the artifacts. Raise BuildError with a reason a user can act on."""
