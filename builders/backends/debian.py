"""``kiln-debian`` backend: Debian images built with mmdebstrap, packed with mksquashfs.

The recipe format (recipe.yaml) is in docs/recipes.md; parsing is in debian_recipe.py (extra
repositories: debian_repos.py), the mirror choice in debian_mirror.py, the customize script in
debian_script.py, the build metadata in debian_build_info.py. This module runs the tools:
mmdebstrap into ``<work_dir>/rootfs`` with one customize hook, then mksquashfs with fixed
timestamps, then copies the kernel and initrd, makes the disks, writes the build metadata.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from builders.backends import debian_build_info as build_info
from builders.backends import debian_mirror as mirrors
from builders.backends import debian_recipe as recipes
from builders.backends import debian_repos as repos
from builders.backends import debian_resolve as resolving
from builders.backends import debian_script as scripts
from builders.backends import disk_image as disks
from builders.backends import tool_process
from builders.backends.base import (
    INITRD,
    KERNEL,
    ROOTFS_SQUASHFS,
    Artifact,
    BuildContext,
    BuildError,
)
from builders.backends.tool_process import STOPPED, run_tool, unmount_below, wait_for_index

_CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PASSED_THROUGH_ENV = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY")
_TERM_GRACE_SECONDS = 30.0
# a point-in-time snapshot archive: .../archive/debian/20250520T000000Z
_SNAPSHOT_MIRROR = re.compile(r"/archive/[^/]+/\d{8}T\d{6}Z/?$")
_ERROR_LINES = 4
# mmdebstrap's wrappers around the real error (which apt or the customize script printed)
_GENERIC_ERROR = re.compile(
    r"^E: (setup failed|mmdebstrap failed|run_chroot failed|.* failed: E: )"
)


class DebianBackend:
    recipe_types: tuple[str, ...] = ("kiln-debian",)

    def __init__(
        self,
        *,
        repo_wait_seconds: float = 60.0,
        environ: Mapping[str, str] | None = None,
        etc_apt: Path = Path("/etc/apt"),
        binfmt_dir: Path = Path("/proc/sys/fs/binfmt_misc"),
    ) -> None:
        self._repo_wait_seconds = repo_wait_seconds
        self._environ = os.environ if environ is None else environ
        self._etc_apt = etc_apt
        self._binfmt_dir = binfmt_dir

    def unavailable_reason(self, arch: str) -> str | None:
        if arch not in recipes.DEBIAN_ARCHES:
            return f"unsupported arch {arch} (supported: {', '.join(recipes.DEBIAN_ARCHES)})"
        return tool_process.host_problem(
            (("mmdebstrap", "mmdebstrap"), ("mksquashfs", "squashfs-tools")),
            f"{self._environ.get('PATH', '')}:{_CHROOT_PATH}",
            "mmdebstrap --mode=root",
            arch,
            self._binfmt_dir,
        )

    def wait_for_repos(self, ctx: BuildContext) -> None:
        recipe = recipes.load_recipe(ctx.recipe_dir, ctx.template)
        mirror = mirrors.resolve_mirror(recipe, self._environ, self._etc_apt)
        repos.check_against_mirror(recipe.repositories, mirror, recipe.suite)
        url = f"{mirror}/dists/{recipe.suite}/Release"
        debarch = recipes.debian_arch(ctx.arch)
        wait_for_index(
            url,
            ctx,
            wait_seconds=self._repo_wait_seconds,
            not_found=(
                f"suite {recipe.suite!r} does not exist on package mirror ({url} answered "
                "404 Not Found); check 'suite' and 'mirror' in recipe.yaml"
            ),
            check=lambda release: mirrors.release_mismatch(release, recipe, debarch),
            gave_up=lambda problem: (
                f"package mirror {mirror} did not answer for suite {recipe.suite} within "
                f"{self._repo_wait_seconds:.0f} s ({problem}); check 'mirror' in recipe.yaml, "
                f"${mirrors.MIRROR_ENV} or the build host's network"
            ),
        )
        ctx.log(f"I: kiln: package mirror {mirror} has suite {recipe.suite}")
        for index, repository in enumerate(recipe.repositories):
            self._wait_for_repository(repository, f"repositories[{index}]", debarch, ctx)

    def _wait_for_repository(
        self, repository: repos.Repository, where: str, debarch: str, ctx: BuildContext
    ) -> None:
        url = repository.release_url
        wait_for_index(
            url,
            ctx,
            wait_seconds=self._repo_wait_seconds,
            not_found=(
                f"{where}: suite {repository.suite!r} does not exist on {repository.url} ({url} "
                f"answered 404 Not Found); check {where}.url and {where}.suite in recipe.yaml"
            ),
            check=lambda release: _prefixed(
                where, mirrors.release_mismatch(release, repository, debarch)
            ),
            gave_up=lambda problem: (
                f"{where}: repository {repository.url} did not answer for suite "
                f"{repository.suite} within {self._repo_wait_seconds:.0f} s ({problem}); "
                f"check {where}.url in recipe.yaml or the build host's network"
            ),
        )
        ctx.log(f"I: kiln: {where}: {repository.url} has suite {repository.suite}")

    def resolve(self, ctx: BuildContext) -> dict[str, object]:
        """The build plan before building: the build cache's key (debian_resolve.py)."""
        env = self._build_env(ctx.source_date_epoch)
        return resolving.resolve(ctx, self._environ, self._etc_apt, env)

    def build(self, ctx: BuildContext) -> list[Artifact]:
        recipe = recipes.load_recipe(ctx.recipe_dir, ctx.template)
        debarch = recipes.debian_arch(ctx.arch)
        mirror = mirrors.resolve_mirror(recipe, self._environ, self._etc_apt)
        repos.check_against_mirror(recipe.repositories, mirror, recipe.suite)
        stage_dir = ctx.work_dir / "kiln-stage"
        rootfs = ctx.work_dir / "rootfs"
        if recipe.disk is not None and (missing := disks.missing_tools(_CHROOT_PATH)):
            raise BuildError(
                f"disk: needs tools this build host lacks: {', '.join(missing)}; "
                "install the packages named"
            )
        releases = build_info.fetch_sources(recipe, mirror, ctx)
        if not ctx.source_date_epoch:  # 0: the suite's Release date (debian_resolve.py)
            epoch = resolving.effective_epoch(ctx, releases.release)
            ctx = dataclasses.replace(ctx, source_date_epoch=epoch)
            ctx.log(f"I: kiln: source_date_epoch {epoch}: the date of the suite's Release file")
        staged = scripts.stage_files(recipe, ctx.template, stage_dir)
        sources = repos.apt_sources(recipe.repositories, stage_dir)
        info_dir = stage_dir / build_info.INFO_DIR
        script = stage_dir / "customize.sh"
        script.write_text(scripts.customize_script(recipe, staged, sources, info_dir))
        env = self._build_env(ctx.source_date_epoch)
        command = _mmdebstrap_command(
            recipe, debarch, mirror, rootfs, script, sources.mmdebstrap_lines
        )
        ctx.log(f"I: kiln: {shlex.join(command)}")
        try:
            try:
                _run(command, env, ctx)
            finally:
                unmount_below(rootfs, ctx)
            ctx.out_dir.mkdir(parents=True, exist_ok=True)
            artifacts = [_make_squashfs(rootfs, recipe, env, ctx)]
            artifacts += _boot_artifacts(rootfs, recipe, ctx)
            tools = list(build_info.BUILD_TOOLS)
            if recipe.disk is not None:
                artifacts += _disk_artifacts(rootfs, recipe.disk, artifacts[0].path, env, ctx)
                tools += build_info.DISK_TOOLS
            versions = build_info.tool_versions(tools, env)
            artifacts += build_info.write_artifacts(
                ctx, recipe, releases, debarch, info_dir, versions
            )
            return artifacts
        except BuildError as exc:  # leave the half-built root for a debug shell (enable_debug)
            if exc.root is None and rootfs.is_dir():
                exc.root = rootfs
            raise

    def _build_env(self, source_date_epoch: int) -> dict[str, str]:
        """A clean environment: identical builds must not depend on the agent's environment."""
        env = {
            "PATH": _CHROOT_PATH,
            "HOME": "/root",
            "LC_ALL": "C.UTF-8",
            "DEBIAN_FRONTEND": "noninteractive",
            "SOURCE_DATE_EPOCH": str(source_date_epoch),
        }
        env.update({k: v for k, v in self._environ.items() if k in _PASSED_THROUGH_ENV})
        return env


def _prefixed(where: str, problem: str | None) -> str | None:
    return None if problem is None else f"{where}: {problem}"


def _mmdebstrap_command(
    recipe: recipes.Recipe,
    debarch: str,
    mirror: str,
    rootfs: Path,
    script: Path,
    extra_sources: Sequence[str] = (),
) -> list[str]:
    """mmdebstrap's arguments: the mirror, then each extra repository as a ``deb`` line."""
    packages = resolving.requested_packages(recipe, debarch)
    command = [
        "mmdebstrap",
        "--mode=root",
        "--format=directory",
        f"--variant={recipe.variant}",
        f"--architectures={debarch}",
        f"--components={','.join(recipe.components)}",
        f'--customize-hook=sh {shlex.quote(str(script))} "$1"',
    ]
    if packages:
        command.append(f"--include={','.join(packages)}")
    if _SNAPSHOT_MIRROR.search(mirror):  # a snapshot archive is old on purpose
        command.append('--aptopt=Acquire::Check-Valid-Until "false"')
    return command + [recipe.suite, str(rootfs), mirror, *extra_sources]


def _run(command: Sequence[str], env: Mapping[str, str], ctx: BuildContext) -> None:
    """Run mmdebstrap or mksquashfs, logging its output; BuildError on failure."""
    result = run_tool(
        command,
        env,
        ctx,
        stop_signal=signal.SIGTERM,  # mmdebstrap then unmounts and cleans up
        grace_seconds=_TERM_GRACE_SECONDS,
        stop_message="W: kiln: stop requested, terminating the build",
        tail_lines=400,
    )
    if result.returncode != 0:
        raise BuildError(
            f"{command[0]} failed (exit status {result.returncode}): {_error_summary(result.tail)}"
        )


def _error_summary(lines: list[str]) -> str:
    """The lines a user can act on: specific 'E:' lines (apt's, kiln's), else the last output."""
    errors = [line for line in lines if line.startswith("E: ")]
    specific = [line for line in errors if not _GENERIC_ERROR.match(line)]
    picked = specific or errors or [line for line in lines if line.strip()][-_ERROR_LINES:]
    unique = [line[:300] for line in dict.fromkeys(picked)]
    return " | ".join(unique[:_ERROR_LINES]) or "no output"


def _make_squashfs(
    rootfs: Path, recipe: recipes.Recipe, env: Mapping[str, str], ctx: BuildContext
) -> Artifact:
    if ctx.should_stop():
        raise BuildError(STOPPED)
    target = ctx.out_dir / f"{ctx.image_root_archive_name}.squashfs"
    epoch = str(ctx.source_date_epoch)
    command = ["mksquashfs", str(rootfs), str(target), "-noappend", "-reproducible", "-quiet"]
    command += [
        "-no-progress",
        "-mkfs-time",
        epoch,
        "-all-time",
        epoch,
        "-comp",
        recipe.squashfs_compression,
    ]
    ctx.log(f"I: kiln: {shlex.join(command)}")
    # mksquashfs refuses SOURCE_DATE_EPOCH together with -all-time; -all-time is stricter.
    env = {key: value for key, value in env.items() if key != "SOURCE_DATE_EPOCH"}
    try:
        _run(command, env, ctx)
    except BuildError:
        target.unlink(missing_ok=True)
        raise
    ctx.log(f"I: kiln: {target.name}: {target.stat().st_size} bytes")
    return Artifact(path=target, type=ROOTFS_SQUASHFS)


def _boot_artifacts(rootfs: Path, recipe: recipes.Recipe, ctx: BuildContext) -> list[Artifact]:
    found = recipes.find_kernel_and_initrd(rootfs / "boot", kernel_required=recipe.kernel)
    if found is None:
        return []
    kernel, initrd = found
    return [
        _copy_artifact(kernel, ctx.out_dir / ctx.kernel_file_name, KERNEL, ctx),
        _copy_artifact(initrd, ctx.out_dir / ctx.initrd_file_name, INITRD, ctx),
    ]


def _disk_artifacts(
    rootfs: Path,
    disk: recipes.Disk,
    squashfs: Path,
    env: Mapping[str, str],
    ctx: BuildContext,
) -> list[Artifact]:
    """The disk images (after the squashfs: the disk's root gets its own /etc/fstab)."""
    found = recipes.find_kernel_and_initrd(rootfs / "boot", kernel_required=True)
    assert found is not None  # kernel_required raises instead
    # the disk's GUIDs and file system ids follow the image's content, not the job id, so that
    # rebuilding the same inputs gives the same disk
    seed = f"{ctx.arch}:{disks.digest(squashfs)}"
    return disks.make_disks(rootfs, *found, disk, seed, env, ctx)


def _copy_artifact(source: Path, target: Path, kind: str, ctx: BuildContext) -> Artifact:
    shutil.copyfile(source, target)
    target.chmod(0o644)
    ctx.log(f"I: kiln: /boot/{source.name} -> {target.name}")
    return Artifact(path=target, type=kind)
