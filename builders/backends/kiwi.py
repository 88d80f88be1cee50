"""``kiwi-ng`` backend: KIWI NG image descriptions built with the kiwi-ng CLI.

The recipe archive is a KIWI description (config.xml or <name>.kiwi, config.sh, root/, ...);
finding it, filling its ``{{key}}`` placeholders and reading its repositories is in
kiwi_description.py. This module checks the repositories, runs ``kiwi-ng system build`` for
the description's ``kis`` type and moves the squashfs root, kernel and initrd to ctx.out_dir.
docs/recipes.md ("kiwi-ng recipes") is the user's side of it.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import shlex
import shutil
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from builders.backends import debian_mirror as mirrors
from builders.backends import kiwi_description as descriptions
from builders.backends import tool_process
from builders.backends.base import (
    INITRD,
    KERNEL,
    ROOTFS_SQUASHFS,
    Artifact,
    BuildContext,
    BuildError,
)
from builders.backends.debian_recipe import DEBIAN_ARCHES
from builders.backends.tool_process import (
    STOPPED,
    run_tool,
    sleep_unless_stopped,
    unmount_below,
    wait_for_index,
)

ARCHES = ("x86_64", "aarch64")
#: Host-wide lock held while a kiwi-ng build bootstraps (see _BootstrapLock).
BOOTSTRAP_LOCK = Path("/run/lock/kiln-kiwi-bootstrap.lock")
_HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PASSED_THROUGH_ENV = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY")
_INTERRUPT_GRACE_SECONDS = 60.0
# kiwi-ng logs this once the bootstrap (host apt-get and dpkg) is done; the rest runs chrooted
_BOOTSTRAP_DONE = re.compile(r"\| Installing system \(chroot\)|\| Processing of bootstrap stage")
_LOG_LINE = re.compile(r"^\[ (DEBUG|INFO|WARNING|ERROR|CRITICAL) *\]: ")
_PROGRESS = re.compile(r"^\[ INFO +\]: Processing: \[[# ]*\] \d+%$")
_GLUED = re.compile(r"(?<=%)(?=\[ [A-Z]+ *\]: )")
# apt and dpkg errors, as kiwi-ng's debug log repeats them (possibly after a "topic: ")
_TOOL_ERROR = re.compile(r"(?:^|: )(E: .*|dpkg: error.*)$")
_SQUASHFS_MAGIC = b"hsqs"


class KiwiBackend:
    recipe_types: tuple[str, ...] = ("kiwi-ng",)

    def __init__(
        self,
        *,
        repo_wait_seconds: float = 60.0,
        environ: Mapping[str, str] | None = None,
        etc_apt: Path = Path("/etc/apt"),
        binfmt_dir: Path = Path("/proc/sys/fs/binfmt_misc"),
        kiwi_ng: Path | None = None,
        bootstrap_lock: Path = BOOTSTRAP_LOCK,
    ) -> None:
        self._repo_wait_seconds = repo_wait_seconds
        self._environ = os.environ if environ is None else environ
        self._etc_apt = etc_apt
        self._binfmt_dir = binfmt_dir
        self._kiwi_ng = kiwi_ng or _find_kiwi_ng()
        self._bootstrap_lock = bootstrap_lock

    def unavailable_reason(self, arch: str) -> str | None:
        if arch not in ARCHES:
            return f"unsupported arch {arch} (supported: {', '.join(ARCHES)})"
        if self._kiwi_ng is None:
            return "the kiwi-ng CLI is not installed next to the agent (pip install kiwi==11.1.6)"
        return tool_process.host_problem(
            (("rsync", "rsync"), ("mksquashfs", "squashfs-tools")),
            f"{self._environ.get('PATH', '')}:{_HOST_PATH}",
            "kiwi-ng",
            arch,
            self._binfmt_dir,
        )

    def wait_for_repos(self, ctx: BuildContext) -> None:
        description = descriptions.load_description(ctx.recipe_dir, self._template(ctx))
        for repo in description.repositories_for(ctx.arch):
            url = repo.index_url()
            if url is None:
                ctx.log(f"I: kiln: not checking repository {repo.uri} ({repo.type})")
                continue
            self._wait_for(url, repo, ctx)

    def build(self, ctx: BuildContext) -> list[Artifact]:
        work = ctx.work_dir
        work.mkdir(parents=True, exist_ok=True)
        for name in ("kiwi-tmp", "kiwi-cache"):
            (work / name).mkdir(exist_ok=True)
        description_file = descriptions.render_description(
            ctx.recipe_dir, work / "description", self._template(ctx)
        )
        description = descriptions.parse_description(description_file.read_text(), description_file)
        if problem := description.kis_problem():
            raise BuildError(
                f"{description_file.name}: {problem}; Kiln builds the kis type and needs "
                '<type image="kis" filesystem="squashfs" archive="false"/>'
            )
        target_dir = work / "kiwi-target"
        command = [
            str(self._kiwi_ng),
            "--debug",  # the whole log (apt, dpkg, config.sh) goes to the build log
            f"--kiwi-file={description_file.name}",
            "--type=kis",
            f"--shared-cache-dir={work / 'kiwi-cache'}",
            f"--temp-dir={work / 'kiwi-tmp'}",
        ]
        env = self._build_env(ctx.source_date_epoch)
        if ctx.arch != platform.machine():
            command.append(f"--target-arch={ctx.arch}")
            if description.package_manager == "apt":
                env["APT_CONFIG"] = str(_foreign_apt_config(work / "kiwi-cache", ctx.arch))
        command += ["system", "build", f"--description={description_file.parent}"]
        command.append(f"--target-dir={target_dir}")
        ctx.log(f"I: kiln: {shlex.join(command)}")
        lock = _BootstrapLock(self._bootstrap_lock)
        image_root = target_dir / "build" / "image-root"
        try:
            try:
                lock.acquire(ctx)
                _run_kiwi(command, env, ctx, lock)
            finally:
                lock.release()
                unmount_below(work, ctx)
            return _collect_artifacts(target_dir, ctx)
        except BuildError as exc:  # leave the half-built root for a debug shell (enable_debug)
            if exc.root is None and str(exc) != STOPPED and image_root.is_dir():
                exc.root = image_root
            raise

    def _template(self, ctx: BuildContext) -> dict[str, str]:
        host = descriptions.host_template(self._environ, self._etc_apt)
        return descriptions.merged_template(ctx.template, host)

    def _wait_for(self, url: str, repo: descriptions.Repository, ctx: BuildContext) -> None:
        wait_for_index(
            url,
            ctx,
            wait_seconds=self._repo_wait_seconds,
            not_found=(
                f"package repository {repo.uri} has no index at {url} (404 Not Found); check "
                "the repository's source path and distribution in the KIWI description"
            ),
            check=lambda index: repo.index_problem(index, ctx.arch),
            gave_up=lambda problem: (
                f"package repository {repo.uri} did not answer within "
                f"{self._repo_wait_seconds:.0f} s ({url}: {problem}); check the <repository> "
                f"<source path=...> in the KIWI description, ${mirrors.MIRROR_ENV} or the "
                "build host's network"
            ),
        )
        ctx.log(f"I: kiln: repository {url} answers")

    def _build_env(self, source_date_epoch: int) -> dict[str, str]:
        """A clean environment: builds must not depend on the agent's environment."""
        env = {
            "PATH": _HOST_PATH,
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "DEBIAN_FRONTEND": "noninteractive",
            "PYTHONUNBUFFERED": "1",  # kiwi-ng's log reaches the build log as it is written
            "SOURCE_DATE_EPOCH": str(source_date_epoch),
        }
        env.update({k: v for k, v in self._environ.items() if k in _PASSED_THROUGH_ENV})
        return env


def _find_kiwi_ng() -> Path | None:
    """kiwi-ng next to the running interpreter (the agent's virtualenv), else on PATH."""
    beside = Path(sys.executable).parent / "kiwi-ng"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("kiwi-ng")
    return Path(found) if found else None


class _BootstrapLock:
    """A host-wide lock that a kiwi-ng build holds from its start until its bootstrap is done.

    kiwi-ng bootstraps a Debian root with the *host's* apt-get: it runs apt with its status
    file in the host's /var/lib/dpkg (status.kiwi), so apt takes the host's dpkg lock there,
    and two builds bootstrapping at once fail on it ("Could not get lock"). The bootstrap
    takes seconds; the long part after it runs chrooted in the build's own root. So builds on
    a host bootstrap one at a time and overlap for the rest. Everything else a build writes is
    its own: --shared-cache-dir, --temp-dir and the image root are under its work dir. An
    flock is dropped by the kernel if the agent dies, so a crash cannot leave it held.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def acquire(self, ctx: BuildContext) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        logged = False
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if not logged:
                    ctx.log("I: kiln: waiting for another kiwi-ng build's bootstrap to end")
                    logged = True
                try:
                    sleep_unless_stopped(0.5, ctx)
                except BuildError:
                    self.release()
                    raise

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None


def _foreign_apt_config(cache_dir: Path, arch: str) -> Path:
    """An APT_CONFIG file that makes apt install ``arch`` packages.

    kiwi-ng bootstraps with the host's apt-get and does not tell it --target-arch, so it would
    fetch the host's packages. The file is in the shared cache directory, which kiwi-ng binds
    at the same path inside the image root, so the chrooted apt-get calls read it as well.
    """
    debarch = DEBIAN_ARCHES[arch]
    path = cache_dir / "kiln-apt-arch.conf"
    path.write_text(f'APT::Architecture "{debarch}";\nAPT::Architectures {{ "{debarch}"; }};\n')
    return path


def _run_kiwi(
    command: Sequence[str], env: Mapping[str, str], ctx: BuildContext, lock: _BootstrapLock
) -> None:
    """Run kiwi-ng, logging its output; BuildError on failure."""

    def release_after_bootstrap(line: str) -> None:
        if _BOOTSTRAP_DONE.search(line):
            lock.release()

    result = run_tool(
        command,
        env,
        ctx,
        stop_signal=signal.SIGINT,  # kiwi-ng then unmounts and cleans up
        grace_seconds=_INTERRUPT_GRACE_SECONDS,
        stop_message="W: kiln: stop requested, interrupting kiwi-ng",
        tail_lines=600,
        split=_split_progress,
        on_line=release_after_bootstrap,
    )
    if result.returncode != 0:
        raise BuildError(
            f"kiwi-ng failed (exit status {result.returncode}): {error_summary(result.tail)}"
        )


def _split_progress(text: str) -> Iterator[str]:
    """kiwi-ng draws progress bars with "\r" and logs right after them: split, drop the bars."""
    for segment in text.split("\r"):
        for line in _GLUED.split(segment):
            if line and not _PROGRESS.match(line):
                yield line


def error_summary(lines: list[str]) -> str:
    """What a user can act on: kiwi-ng's error (with its detail lines) and apt/dpkg errors."""
    picked: list[str] = []
    in_error = False
    for line in lines:
        if line.startswith("[ ERROR"):
            in_error = True
            picked.append(line.split("| ", 1)[-1])
        elif _LOG_LINE.match(line):
            in_error = False
            match = _TOOL_ERROR.search(line.split("| ", 1)[-1])
            if match:
                picked.append(match.group(1))
        elif in_error and line.strip():
            picked.append(line.strip())
        elif match := _TOOL_ERROR.search(line):
            picked.append(match.group(1))
    if not picked:
        picked = [line for line in lines if line.strip()][-4:]
    unique = [line[:300] for line in dict.fromkeys(picked)]
    return " | ".join(unique[-8:]) or "no output"


def _collect_artifacts(target_dir: Path, ctx: BuildContext) -> list[Artifact]:
    """Move kiwi-ng's kis results (listed in kiwi.result.json) into ctx.out_dir."""
    try:
        results = json.loads((target_dir / "kiwi.result.json").read_text())
    except (OSError, ValueError) as exc:
        raise BuildError(f"kiwi-ng left no readable kiwi.result.json: {exc}") from None
    wanted = (
        ("kis_rootfs", f"{ctx.image_root_archive_name}.squashfs", ROOTFS_SQUASHFS),
        ("kis_kernel", ctx.kernel_file_name, KERNEL),
        ("kis_initrd", ctx.initrd_file_name, INITRD),
    )
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    artifacts = []
    for key, name, kind in wanted:
        source = Path(results.get(key, {}).get("filename") or "")
        if not source.is_file():
            raise BuildError(f"kiwi-ng made no {key.removeprefix('kis_')} file ({key})")
        with source.open("rb") as file:
            magic = file.read(len(_SQUASHFS_MAGIC))
        if kind == ROOTFS_SQUASHFS and magic != _SQUASHFS_MAGIC:
            raise BuildError(f"kiwi-ng's root file system {source.name} is not a squashfs")
        target = ctx.out_dir / name
        shutil.move(source, target)
        target.chmod(0o644)
        ctx.log(f"I: kiln: {source.name} -> {name} ({target.stat().st_size} bytes)")
        artifacts.append(Artifact(path=target, type=kind))
    return artifacts
