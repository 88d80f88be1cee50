"""A real aarch64 kiln-debian build: under qemu-user-static where this machine is not aarch64."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path, PurePosixPath

import pytest

from builders.backends.base import (
    BUILD_PLAN_JSON,
    PACKAGES_JSON,
    ROOTFS_SQUASHFS,
    SBOM_CYCLONEDX,
    SBOM_SPDX,
    BuildContext,
)
from builders.backends.debian import DebianBackend
from infra.local import emulation
from tests import skip_policy

pytestmark = pytest.mark.slow

EM_AARCH64 = 183
EPOCH = 1700000000
# bookworm minbase: apt runs inside the arm64 chroot too, as it does for every real recipe.
MINIMAL = Path(__file__).resolve().parents[2] / "examples" / "recipes" / "minimal" / "recipe.yaml"


@pytest.fixture(scope="module", autouse=True)
def _needs_aarch64() -> None:
    reason = emulation.ensure_emulation("aarch64")
    if reason:
        pytest.skip(skip_policy.no_emulation("aarch64", reason))
    reason = DebianBackend().unavailable_reason("aarch64")
    if reason:
        pytest.skip(f"cannot build kiln-debian aarch64 images here: {reason}")


def image_symlinks(squashfs: Path) -> dict[str, str]:
    """Every symlink in the image: its absolute path in the image -> its target as stored."""
    listing = subprocess.run(
        ["unsquashfs", "-lls", str(squashfs)], check=True, capture_output=True, text=True
    ).stdout
    links = {}
    for line in listing.splitlines():
        if line.startswith("l") and " squashfs-root/" in line and " -> " in line:
            path, _, target = line.split(" squashfs-root", 1)[1].partition(" -> ")
            links[path] = target
    return links


def resolve_in_image(path: str, links: dict[str, str]) -> str:
    """``path`` with every symlink resolved inside the image (never on this machine)."""
    pending = list(PurePosixPath(path).parts[1:])
    resolved = PurePosixPath("/")
    for _ in range(1000):
        if not pending:
            return str(resolved)
        part = pending.pop(0)
        if part == "..":
            resolved = resolved.parent
        elif part != ".":
            candidate = resolved / part
            target = links.get(str(candidate))
            if target is None:
                resolved = candidate
            else:
                pending[:0] = PurePosixPath(target).parts
                if target.startswith("/"):
                    pending.pop(0)
                    resolved = PurePosixPath("/")
    raise AssertionError(f"too many symlinks resolving {path}")


def test_resolve_in_image_follows_links_inside_the_image() -> None:
    links = {"/bin": "usr/bin", "/usr/bin/sh": "dash", "/lib": "/usr/lib", "/usr/bin/x": "../lib"}
    assert resolve_in_image("/bin/sh", links) == "/usr/bin/dash"
    assert resolve_in_image("/bin/x/ld.so", links) == "/usr/lib/ld.so"
    assert resolve_in_image("/lib/../etc", links) == "/usr/etc"


def test_aarch64_rootfs_has_an_aarch64_shell(tmp_path: Path) -> None:
    recipe_dir = tmp_path / "recipe"
    recipe_dir.mkdir()
    shutil.copyfile(MINIMAL, recipe_dir / "recipe.yaml")
    lines: list[str] = []
    ctx = BuildContext(
        job_id="arm64",
        arch="aarch64",
        recipe_type="kiln-debian",
        recipe_dir=recipe_dir,
        work_dir=tmp_path / "work",
        out_dir=tmp_path / "out",
        template={},
        source_date_epoch=EPOCH,
        image_root_archive_name="arm64-rootfs",
        log=lines.append,
        should_stop=lambda: False,
    )
    ctx.work_dir.mkdir()
    backend = DebianBackend()
    started = time.monotonic()
    backend.wait_for_repos(ctx)
    artifacts = backend.build(ctx)
    print(f"aarch64 rootfs built in {time.monotonic() - started:.0f} s")

    assert [artifact.type for artifact in artifacts] == [
        ROOTFS_SQUASHFS,
        PACKAGES_JSON,
        BUILD_PLAN_JSON,
        SBOM_CYCLONEDX,
        SBOM_SPDX,
    ]
    squashfs = artifacts[0].path
    shell = resolve_in_image("/bin/sh", image_symlinks(squashfs))
    assert shell.startswith("/usr/bin/"), shell
    header = subprocess.run(
        ["unsquashfs", "-cat", str(squashfs), shell.lstrip("/")], check=True, capture_output=True
    ).stdout[:20]
    assert header[:4] == b"\x7fELF", f"{shell} is not an ELF file: {header!r}"
    assert header[4:6] == b"\x02\x01", "not a 64-bit little-endian ELF file"
    assert int.from_bytes(header[18:20], "little") == EM_AARCH64
    hostname = subprocess.run(
        ["unsquashfs", "-cat", str(squashfs), "etc/hostname"], check=True, capture_output=True
    ).stdout
    assert hostname == b"kiln-minimal\n"
    packages = json.loads(artifacts[1].path.read_text())
    base_files = next(package for package in packages if package["name"] == "base-files")
    assert base_files["arch"] == "arm64" and len(base_files["sigmd5"]) == 32
    if emulation.native_arch() != "aarch64":
        assert any("using qemu-user binfmt emulation" in line for line in lines)
