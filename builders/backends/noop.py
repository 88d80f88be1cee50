"""``kiln-noop`` backend: no tools, no network; for benchmarks and agent/protocol tests.

It writes one small deterministic "rootfs" file, named like the Debian backend's rootfs and
typed as a squashfs (its bytes are not a real squashfs). recipe.yaml may hold:

    fail: "reason"   # raise BuildError("reason"), leaving a tiny root (etc/kiln-noop) behind
                     # for an enable_debug shell
    sleep: 2.5       # seconds to take, stopping early (BuildError) if the host is told to stop
    nondeterministic: true  # random bytes end the rootfs: a recipe no rebuild reproduces
                            # (docs/reproducibility.md)
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import yaml

from builders.backends.base import ROOTFS_SQUASHFS, Artifact, BuildContext, BuildError
from builders.backends.debian_build_info import recipe_inputs
from builders.backends.debian_resolve import PLAN_FORMAT

RECIPE_FILE = "recipe.yaml"
STOPPED = "build stopped: host is shutting down"
ARCHES = ("x86_64", "aarch64")


class NoopBackend:
    recipe_types: tuple[str, ...] = ("kiln-noop",)

    def unavailable_reason(self, arch: str) -> str | None:
        return None if arch in ARCHES else f"unsupported arch {arch} (supported: x86_64, aarch64)"

    def wait_for_repos(self, ctx: BuildContext) -> None:
        return None

    def resolve(self, ctx: BuildContext) -> dict[str, Any]:
        """The build plan (the build cache's key): everything the output's bytes and names
        follow from (not the job id)."""
        return {
            "format": PLAN_FORMAT,
            "backend": "kiln-noop",
            "recipe_type": ctx.recipe_type,
            "arch": ctx.arch,
            "source_date_epoch": ctx.source_date_epoch,
            "template_dictionary": dict(sorted(ctx.template.items())),
            "inputs": recipe_inputs(ctx.recipe_dir),
            "outputs": {"image_root_archive_name": ctx.image_root_archive_name},
        }

    def build(self, ctx: BuildContext) -> list[Artifact]:
        recipe_bytes = _read_recipe(ctx)
        settings = _settings(recipe_bytes)
        ctx.log(f"I: kiln-noop: job {ctx.job_id} ({ctx.arch})")
        _sleep(settings.get("sleep", 0), ctx)
        reason = settings.get("fail")
        if reason is not None:
            root = ctx.work_dir / "rootfs"
            (root / "etc").mkdir(parents=True, exist_ok=True)
            (root / "etc" / "kiln-noop").write_text(f"failed build of job {ctx.job_id}\n")
            raise BuildError(str(reason), root=root)
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        target = ctx.out_dir / f"{ctx.image_root_archive_name}.squashfs"
        noise = os.urandom(16) if settings.get("nondeterministic") is True else b""
        target.write_bytes(recipe_bytes + _inputs(ctx) + noise)
        ctx.log(f"I: kiln-noop: wrote {target.name} ({target.stat().st_size} bytes)")
        return [Artifact(path=target, type=ROOTFS_SQUASHFS)]


def _read_recipe(ctx: BuildContext) -> bytes:
    path = ctx.recipe_dir / RECIPE_FILE
    if not path.is_file():
        raise BuildError(f"the recipe archive has no {RECIPE_FILE} at its top level")
    return path.read_bytes()


def _settings(recipe_bytes: bytes) -> dict[str, object]:
    try:
        data = yaml.safe_load(recipe_bytes) or {}
    except yaml.YAMLError as exc:
        raise BuildError(f"{RECIPE_FILE} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise BuildError(f"{RECIPE_FILE} must be a mapping (fail: ..., sleep: ...)")
    return data


def _inputs(ctx: BuildContext) -> bytes:
    """The job inputs that identify the result (not job_id: same inputs, same bytes)."""
    inputs = {
        "arch": ctx.arch,
        "recipe_type": ctx.recipe_type,
        "template": ctx.template,
        "source_date_epoch": ctx.source_date_epoch,
        "image_root_archive_name": ctx.image_root_archive_name,
    }
    return b"\n" + json.dumps(inputs, sort_keys=True).encode("utf-8") + b"\n"


def _sleep(seconds: object, ctx: BuildContext) -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise BuildError(f"sleep must be a number of seconds, got {seconds!r}")
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if ctx.should_stop():
            raise BuildError(STOPPED)
        time.sleep(min(0.1, remaining))
