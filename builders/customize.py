"""The customize flow: unpack an existing image, let its owner change it over SSH, repackage it
as a new image. The source image's objects are only read, never written.

fetching_image (download the source's rootfs squashfs, kernel and initrd as the API side
listed them from its manifest, check their sha256, unsquashfs) → waiting_on_user (SSH session
until the completion file appears) → building_image (mksquashfs with fixed timestamps) →
publish like a create job.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from builders import sbom, ssh_session
from builders.backends.base import (
    INITRD,
    KERNEL,
    ROOTFS_SQUASHFS,
    Artifact,
    BuildContext,
    BuildError,
)
from builders.job_run import JobRun
from builders.report import digests
from chalicelib.host_protocol import Stage

_TOOLS = (("unsquashfs", "squashfs-tools"), ("mksquashfs", "squashfs-tools"))
_CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DEFAULT_COMPRESSION = "zstd"
_LOGGED_LINES = 20


def unavailable_reason() -> str | None:
    """None when this host can run customize jobs; else what is missing."""
    for tool, package in _TOOLS:
        if shutil.which(tool, path=f"{os.environ.get('PATH', '')}:{_CLEAN_PATH}") is None:
            return f"{tool} is not installed (apt-get install {package})"
    return ssh_session.unavailable_reason()


class CustomizeRun(JobRun):
    def produce(self) -> list[Artifact]:
        reason = unavailable_reason()
        if reason:
            raise BuildError(f"host {self._reporter.xname} cannot run customize jobs: {reason}")
        self.step("fetching_image")
        with self.stage(Stage.FETCH):
            source = self._fetch_source()
            root = self.work_dir / "root"
            unsquash = ["unsquashfs", "-no-progress", "-d", str(root)]
            self._run([*unsquash, str(source[ROOTFS_SQUASHFS])])
        outcome, container = self.hold_session(root, "customize")
        if outcome == "timeout":
            raise BuildError(
                f"no completion signal within {self.user_wait_seconds} s (create "
                f"{'/tmp/complete' if container['jail'] else '/mnt/image/complete'} when done)"
            )
        self.step("building_image", [container])
        with self.stage(Stage.BUILD):
            artifacts = [self._squash(root, _compression(source[ROOTFS_SQUASHFS]))]
        out = self.work_dir / "out"
        boot = (
            (KERNEL, self.job.kernel_file_name or "vmlinuz"),
            (INITRD, self.job.initrd_file_name or "initrd"),
        )
        for kind, file_name in boot:
            if kind in source:
                target = out / file_name
                shutil.copyfile(source[kind], target)
                target.chmod(0o644)
                artifacts.append(Artifact(path=target, type=kind))
        return artifacts + self._sboms(root, out)

    def _sboms(self, root: Path, out: Path) -> list[Artifact]:
        """The new image's SBOMs, from its dpkg database as the session left it (no .deb
        hashes: the packages a user installed came from nowhere Kiln saw)."""
        packages = installed_packages(root)
        if not packages:
            self.log("I: kiln: no dpkg database in the image: no SBOM")
            return []
        job = self.job
        ctx = BuildContext(
            job_id=job.job_id,
            arch=self._arch,
            recipe_type="",
            recipe_dir=root,
            work_dir=self.work_dir,
            out_dir=out,
            template={},
            source_date_epoch=int(job.source_date_epoch or 0),
            image_root_archive_name=job.image_root_archive_name,
            kernel_file_name=job.kernel_file_name or "vmlinuz",
            initrd_file_name=job.initrd_file_name or "initrd",
        )
        plan = {
            "packages": packages,
            "codename": os_release(root).get("VERSION_CODENAME", ""),
            "architecture": packages[0]["arch"],
            "source_date_epoch": ctx.source_date_epoch,
        }
        described = sbom.describe(plan, [], sbom.image_files(ctx), job.image_root_archive_name)
        return sbom.write(out, described, self.log)

    def _fetch_source(self) -> dict[str, Path]:
        """The source image's artifacts (rootfs, and kernel and initrd if it has them): the
        ones the API side vetted from its manifest (objects the job's tenant may read), by key
        in the job's bucket, each checked against its manifest sha256."""
        source = self.job.source_image or {}
        name = f"source image {source.get('image_id', '')}".rstrip()
        if not source.get("manifest_key"):
            raise BuildError(f"the {name} has no manifest this job may read")
        listed = {a.get("type"): a for a in source.get("artifacts") or [] if isinstance(a, dict)}
        if ROOTFS_SQUASHFS not in listed:
            raise BuildError(
                f"the {name} has no {ROOTFS_SQUASHFS} artifact in {source['manifest_key']} "
                "that this job may read"
            )
        folder = self.work_dir / "source"
        folder.mkdir()
        files: dict[str, Path] = {}
        names = {ROOTFS_SQUASHFS: "rootfs.squashfs", KERNEL: "kernel", INITRD: "initrd"}
        for kind, file_name in names.items():
            if kind in listed:
                files[kind] = self._download(listed[kind], folder / file_name, name)
        return files

    def _download(self, entry: dict[str, Any], target: Path, name: str) -> Path:
        bucket, key = self.job.bucket, str(entry.get("key", ""))
        link = f"s3://{bucket}/{key}"
        try:
            self._s3.download_file(bucket, key, str(target))
        except Exception as exc:
            raise BuildError(f"the {name}'s {link} could not be downloaded: {exc}") from None
        digest = digests(target)["sha256"]
        expected = entry.get("sha256")
        if expected and digest != expected:
            raise BuildError(
                f"the {name}'s {link} does not match its manifest (sha256 {digest}, "
                f"expected {expected})"
            )
        self.log(f"I: kiln: {link} sha256 {digest}")
        return target

    def _squash(self, root: Path, compression: str) -> Artifact:
        target = self.work_dir / "out" / f"{self.job.image_root_archive_name}.squashfs"
        epoch = str(int(self.job.source_date_epoch or 0))
        self._run(
            ["mksquashfs", str(root), str(target), "-noappend", "-reproducible", "-quiet"]
            + ["-no-progress", "-mkfs-time", epoch, "-all-time", epoch, "-comp", compression]
        )
        self.log(f"I: kiln: {target.name}: {target.stat().st_size} bytes")
        return Artifact(path=target, type=ROOTFS_SQUASHFS)

    def _run(self, command: list[str]) -> None:
        """Run a tool in its own process group (killed if the job is interrupted), logging the
        end of its output; BuildError on failure (unsquashfs's 2 is a non-fatal warning)."""
        self.log(f"I: kiln: {shlex.join(command)}")
        # a clean environment; mksquashfs refuses SOURCE_DATE_EPOCH together with -all-time
        env = {"PATH": _CLEAN_PATH, "LC_ALL": "C.UTF-8"}
        with tempfile.TemporaryFile() as output:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            while True:
                try:
                    returncode = process.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    if self.interrupted():
                        os.killpg(process.pid, signal.SIGKILL)
                        process.wait()
                        self.check_interrupted()
            output.seek(0)
            lines = output.read().decode("utf-8", errors="replace").splitlines()
        for line in lines[-_LOGGED_LINES:]:
            self.log(line)
        if returncode not in ((0, 2) if command[0] == "unsquashfs" else (0,)):
            summary = " | ".join(line for line in lines[-4:] if line.strip()) or "no output"
            raise BuildError(f"{command[0]} failed (exit status {returncode}): {summary}")


def _compression(squashfs: Path) -> str:
    """The source image's compression, kept for the new image."""
    done = subprocess.run(
        ["unsquashfs", "-s", str(squashfs)], capture_output=True, text=True, check=False
    )
    found = re.search(r"^Compression (\w+)", done.stdout, re.MULTILINE)
    return found.group(1) if found else _DEFAULT_COMPRESSION


def installed_packages(root: Path) -> list[dict[str, str]]:
    """The packages ``root``'s dpkg database lists as installed: name, version, arch."""
    status = root / "var" / "lib" / "dpkg" / "status"
    if not status.is_file() or status.is_symlink():
        return []
    found = []
    for stanza in status.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        fields = dict(
            line.split(": ", 1)
            for line in stanza.splitlines()
            if ": " in line and not line.startswith((" ", "\t"))
        )
        if fields.get("Status", "").endswith(" installed") and fields.get("Package"):
            version, arch = fields.get("Version", ""), fields.get("Architecture", "")
            found.append({"name": fields["Package"], "version": version, "arch": arch})
    return found


def os_release(root: Path) -> dict[str, str]:
    path = root / "etc" / "os-release"
    if not path.is_file() or path.is_symlink():
        return {}
    pairs = (line.partition("=") for line in path.read_text(errors="replace").splitlines())
    return {key: value.strip('"') for key, _, value in pairs if key}
