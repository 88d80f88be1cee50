"""A bootable GPT disk image from a built root file system, without loop devices or mounts.

``make_disks`` (called by debian.py when the recipe has ``disk:``) builds each partition as a
file, lays them out on a sparse raw disk and converts it to each requested format:

- an EFI system partition (FAT32, ``mkfs.vfat`` + mtools): ``/EFI/BOOT/BOOT<ARCH>.EFI`` is the
  image's own systemd-boot (package ``systemd-boot-efi``), with one loader entry that boots the
  image's kernel and initrd (copied to ``/kiln/``) with ``root=PARTUUID=<root>``;
- an ext4 root partition filled by ``mkfs.ext4 -d <rootfs>``, with an ``/etc/fstab`` for it;
- ``sfdisk`` writes the GPT onto a sparse file, ``dd conv=notrunc,sparse`` copies the
  partitions in, ``qemu-img convert`` makes qcow2/vmdk.

The layout math (sizes, ids, the sfdisk script) is in disk_layout.py.

Reproducible: the GUIDs and file system ids derive from the image's content (the squashfs
digest) and every timestamp is ``source_date_epoch`` or older, so equal builds give equal disks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shlex
import shutil
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from builders.backends.base import DISK_TYPES, Artifact, BuildContext, BuildError
from builders.backends.debian_recipe import Disk
from builders.backends.disk_layout import (
    MIB,
    Ids,
    derive_ids,
    esp_size_for,
    plan_layout,
    sfdisk_script,
    used_inodes,
)
from builders.backends.tool_process import STOPPED, run_tool

TOOLS = {
    "mkfs.vfat": "dosfstools",
    "mmd": "mtools",
    "mcopy": "mtools",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "dumpe2fs": "e2fsprogs",
    "sfdisk": "fdisk",
    "qemu-img": "qemu-utils",
}


@dataclasses.dataclass(frozen=True)
class BootArch:
    efi_binary: str  # systemd-boot inside the image
    boot_name: str  # the removable-media path firmware starts: /EFI/BOOT/<boot_name>
    console: str
    root_type: str  # the Discoverable Partitions root type GUID


BOOT_ARCHES = {
    "x86_64": BootArch(
        "systemd-bootx64.efi", "BOOTX64.EFI", "ttyS0,115200", "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
    ),
    "aarch64": BootArch(
        "systemd-bootaa64.efi",
        "BOOTAA64.EFI",
        "ttyAMA0,115200",
        "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",
    ),
}
EFI_DIR = "usr/lib/systemd/boot/efi"
BOOT_PACKAGE = "systemd-boot-efi"


def make_disks(
    rootfs: Path,
    kernel: Path,
    initrd: Path,
    disk: Disk,
    seed: str,
    env: Mapping[str, str],
    ctx: BuildContext,
) -> list[Artifact]:
    """Build the disk from ``rootfs`` (changed: fstab, /boot/efi, clamped times); one artifact
    per format in ``disk.formats``, named ``<image_root_archive_name>.<format>``."""
    arch = BOOT_ARCHES.get(ctx.arch)
    if arch is None:
        raise BuildError(f"disk images are not supported for arch {ctx.arch}")
    efi = rootfs / EFI_DIR / arch.efi_binary
    if not efi.is_file() or efi.is_symlink():
        raise BuildError(f"the image has no /{EFI_DIR}/{arch.efi_binary} ({BOOT_PACKAGE})")
    epoch = ctx.source_date_epoch
    env = {**env, "SOURCE_DATE_EPOCH": str(epoch), "E2FSPROGS_FAKE_TIME": str(epoch)}
    env["MTOOLS_SKIP_CHECK"] = "1"
    ids = derive_ids(seed)
    work = ctx.work_dir / "disk"
    work.mkdir(parents=True, exist_ok=True)
    _write_fstab(rootfs, ids, epoch)
    used = _clamp_times_and_measure(rootfs, epoch)
    payload = sum(path.stat().st_size for path in (efi, kernel, initrd))
    layout = plan_layout(esp_size_for(payload), used, disk.size, disk.min_size)
    ctx.log(
        f"I: kiln: disk {layout.disk_size // MIB} MiB: EFI partition "
        f"{layout.esp_size // MIB} MiB, root {layout.root_size // MIB} MiB "
        f"({used // MIB} MiB used), root PARTUUID {ids.root_partuuid}"
    )
    esp = _make_esp(work / "esp.img", layout.esp_size, efi, kernel, initrd, arch, ids, env, ctx)
    root = _make_root(work / "root.img", layout.root_size, rootfs, ids, epoch, env, ctx)
    raw = _sparse_file(work / "disk.raw", layout.disk_size)
    script = sfdisk_script(layout, ids, arch.root_type)
    _run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(raw)], env, ctx, script)
    for part, start in ((esp, layout.esp_start), (root, layout.root_start)):
        dd = [f"if={part}", f"of={raw}", "bs=1M", f"seek={start // MIB}"]
        _run(["dd", *dd, "conv=notrunc,sparse", "status=none"], env, ctx)
        part.unlink()
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    artifacts = []
    for fmt in sorted(disk.formats, key=lambda name: name == "raw"):  # raw last: it is moved
        target = ctx.out_dir / f"{ctx.image_root_archive_name}.{fmt}"
        target.unlink(missing_ok=True)
        if fmt == "raw":
            raw.rename(target)
        else:
            options = (
                ["-o", "subformat=streamOptimized,adapter_type=lsilogic"] if fmt == "vmdk" else []
            )
            convert = ["qemu-img", "convert", "-f", "raw", "-O", fmt, *options]
            _run([*convert, str(raw), str(target)], env, ctx)
            if fmt == "vmdk":
                _set_vmdk_cid(target, ids.esp_volume_id.lower())
        target.chmod(0o644)
        ctx.log(f"I: kiln: {target.name}: {target.stat().st_size} bytes")
        artifacts.append(Artifact(path=target, type=DISK_TYPES[fmt]))
    raw.unlink(missing_ok=True)
    order = {fmt: index for index, fmt in enumerate(disk.formats)}
    return sorted(artifacts, key=lambda artifact: order[artifact.path.suffix[1:]])


def _set_vmdk_cid(vmdk: Path, cid: str) -> None:
    """qemu-img writes a random content id into the descriptor (``CID=%x``, so 1 to 8 hex
    digits): replace it with ``cid``. The descriptor is NUL-padded text at a fixed offset, so a
    line that grows by a few bytes still fits (checked)."""
    with vmdk.open("r+b") as handle:
        head = handle.read(64 << 10)
        match = re.search(rb"\nCID=([0-9a-f]{1,8})\n", head)
        end = head.find(b"\0", match.end()) if match else -1
        if match is None or end < 0:
            raise BuildError(f"qemu-img wrote no CID into {vmdk.name}'s descriptor")
        tail = head[match.end(1) : end]
        text = (cid.encode() + tail).ljust(end - match.start(1), b"\0")
        if head[end : match.start(1) + len(text)].strip(b"\0"):
            raise BuildError(f"no room to set the CID in {vmdk.name}'s descriptor")
        handle.seek(match.start(1))
        handle.write(text)


def _sparse_file(path: Path, size: int) -> Path:
    path.unlink(missing_ok=True)
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


def _write_fstab(rootfs: Path, ids: Ids, epoch: int) -> None:
    """/etc/fstab for the disk (replacing the image's; never written through a symlink)."""
    fstab = rootfs / "etc" / "fstab"
    text = (
        "# Written by Kiln for the disk image: <file system> <mount point> <type> <options>\n"
        f"PARTUUID={ids.root_partuuid} / ext4 errors=remount-ro 0 1\n"
        f"PARTUUID={ids.esp_partuuid} /boot/efi vfat umask=0077,nofail 0 2\n"
    )
    if fstab.is_symlink() or fstab.exists():
        fstab.unlink()
    fstab.write_text(text)
    fstab.chmod(0o644)
    efi_dir = rootfs / "boot" / "efi"
    efi_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    for path in (fstab, efi_dir):
        os.utime(path, (epoch, epoch), follow_symlinks=False)


def _clamp_times_and_measure(rootfs: Path, epoch: int) -> int:
    """Set every atime to ``epoch`` and clamp mtimes to it; return the bytes the tree uses."""
    seen: set[tuple[int, int]] = set()
    used = 0
    for top, dirs, files in os.walk(rootfs):
        for name in [".", *dirs, *files] if top == str(rootfs) else [*dirs, *files]:
            path = os.path.join(top, name)
            info = os.lstat(path)
            os.utime(path, (epoch, min(info.st_mtime, epoch)), follow_symlinks=False)
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                used += info.st_blocks * 512
    return used


def _make_esp(
    image: Path,
    size: int,
    efi: Path,
    kernel: Path,
    initrd: Path,
    arch: BootArch,
    ids: Ids,
    env: Mapping[str, str],
    ctx: BuildContext,
) -> Path:
    """FAT32 with systemd-boot as the removable-media loader and one entry: the image's kernel."""
    _sparse_file(image, size)
    _run(
        ["mkfs.vfat", "--invariant", "-F", "32", "-n", "ESP", "-i", ids.esp_volume_id, str(image)],
        env,
        ctx,
    )
    options = f"root=PARTUUID={ids.root_partuuid} ro console=tty0 console={arch.console}"
    loader, entry = image.parent / "loader.conf", image.parent / "kiln.conf"
    loader.write_text("default kiln.conf\ntimeout 0\n")
    entry.write_text(
        f"title Debian (Kiln {ctx.image_root_archive_name})\n"
        f"linux /kiln/vmlinuz\ninitrd /kiln/initrd.img\noptions {options}\n"
    )
    folders = ("::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries", "::/kiln")
    _run(["mmd", "-i", str(image), *folders], env, ctx)
    copies = (
        (efi, f"::/EFI/BOOT/{arch.boot_name}"),
        (kernel, "::/kiln/vmlinuz"),
        (initrd, "::/kiln/initrd.img"),
        (loader, "::/loader/loader.conf"),
        (entry, "::/loader/entries/kiln.conf"),
    )
    for source, target in copies:  # without -m: mtools dates them SOURCE_DATE_EPOCH
        _run(["mcopy", "-i", str(image), str(source), target], env, ctx)
    ctx.log(f"I: kiln: loader entry kiln.conf: options {options}")
    return image


def _make_root(
    image: Path,
    size: int,
    rootfs: Path,
    ids: Ids,
    epoch: int,
    env: Mapping[str, str],
    ctx: BuildContext,
) -> Path:
    _sparse_file(image, size)
    uuid_options = ["-U", ids.root_fs_uuid, "-E", f"hash_seed={ids.root_fs_uuid},root_owner=0:0"]
    mkfs = ["mkfs.ext4", "-q", "-F", "-L", "root", *uuid_options]
    _run([*mkfs, "-d", str(rootfs), str(image)], env, ctx)
    # mke2fs 1.47.0 copies each file's ctime (the build's time): set them all to the epoch.
    dump = "\n".join(_run(["dumpe2fs", str(image)], env, ctx, quiet=True))
    per_group = re.search(r"^Inodes per group:\s+(\d+)$", dump, re.MULTILINE)
    if per_group is None:
        raise BuildError("dumpe2fs printed no 'Inodes per group'")
    commands = image.parent / "debugfs.cmd"
    with commands.open("w") as handle:
        for ino in used_inodes(dump, int(per_group.group(1))):
            handle.write(f"sif <{ino}> ctime {epoch:#x}\nsif <{ino}> atime {epoch:#x}\n")
    _run(["debugfs", "-w", "-f", str(commands), str(image)], env, ctx, quiet=True)
    return image


def _run(
    command: Sequence[str],
    env: Mapping[str, str],
    ctx: BuildContext,
    stdin_text: str | None = None,
    *,
    quiet: bool = False,
) -> list[str]:
    """Run a tool (its output logged unless ``quiet``); its output lines, BuildError if it fails."""
    if ctx.should_stop():
        raise BuildError(STOPPED)
    tool = command[0]
    if stdin_text is not None:  # run_tool gives no stdin: hand the text over as a file
        script = ctx.work_dir / "disk" / f"{tool}.in"
        script.write_text(stdin_text)
        command = ["sh", "-c", 'exec "$@" < "$0"', str(script), *command]
    ctx.log(f"I: kiln: {shlex.join(command)}")
    output: list[str] = []
    result = run_tool(
        command,
        env,
        dataclasses.replace(ctx, log=lambda line: None) if quiet else ctx,
        stop_signal=signal.SIGTERM,
        grace_seconds=10.0,
        stop_message="W: kiln: stop requested, stopping the disk image build",
        tail_lines=20,
        on_line=output.append,
    )
    if result.returncode != 0:
        detail = " | ".join(line for line in result.tail[-4:] if line.strip()) or "no output"
        raise BuildError(f"{tool} failed (exit status {result.returncode}): {detail}")
    return output


def missing_tools(path: str) -> list[str]:
    """The disk tools not found on ``path``, as 'tool (package)'."""
    return [
        f"{tool} ({package})"
        for tool, package in TOOLS.items()
        if shutil.which(tool, path=path) is None
    ]


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()
