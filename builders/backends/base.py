"""The one interface every build backend implements.

The agent (builders/agent.py) owns queues, heartbeats, S3 and Step Functions; a backend only
turns an unpacked recipe into files in ``ctx.out_dir``. It must not talk to AWS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

# IMS artifact types (the values IMS itself writes into manifest.json).
ROOTFS_SQUASHFS = "application/vnd.cray.image.rootfs.squashfs"
KERNEL = "application/vnd.cray.image.kernel"
INITRD = "application/vnd.cray.image.initrd"
BUILD_LOG = "text/plain"
# Kiln's disk images (kiln-debian recipes with ``disk:``), by format.
DISK_QCOW2 = "application/vnd.kiln.image.disk.qcow2"
DISK_RAW = "application/vnd.kiln.image.disk.raw"
DISK_VMDK = "application/vnd.kiln.image.disk.vmdk"
DISK_TYPES = {"qcow2": DISK_QCOW2, "raw": DISK_RAW, "vmdk": DISK_VMDK}
# Build metadata of kiln-debian builds (packages.json, build-plan.json; docs/recipes.md).
PACKAGES_JSON = "application/vnd.kiln.packages+json"
BUILD_PLAN_JSON = "application/vnd.kiln.build-plan+json"


class BuildError(Exception):
    """A build failed for a reason the user can act on (the message says what to change).

    ``root`` is the half-built image root the backend left behind, if any: with
    ``enable_debug`` the host opens an SSH session on it before answering the failure.
    """

    def __init__(self, message: str, root: Path | None = None) -> None:
        super().__init__(message)
        self.root = root


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
