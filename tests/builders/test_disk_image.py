"""Disk images from kiln-debian recipes: the layout math (fast) and a real build that boots
under qemu-system-x86_64 with OVMF (slow: mmdebstrap, then a few minutes of TCG emulation)."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from builders.backends import disk_image as disks
from builders.backends import disk_layout as layouts
from builders.backends.base import (
    BUILD_PLAN_JSON,
    DISK_QCOW2,
    DISK_RAW,
    DISK_VMDK,
    INITRD,
    KERNEL,
    PACKAGES_JSON,
    ROOTFS_SQUASHFS,
    SBOM_CYCLONEDX,
    SBOM_SPDX,
    BuildContext,
    BuildError,
)
from builders.backends.debian import DebianBackend
from tests import skip_policy
from tests.builders.helpers import context, write_recipe
from tests.qemu_boot import boot_to_login

MIB = layouts.MIB
EPOCH = 1700000000
DISK_RECIPE = """\
suite: bookworm
variant: minbase
kernel: true
packages: [systemd-sysv]
hostname: kiln-disk
disk:
  formats: [qcow2, raw, vmdk]
  min_size: 3G
"""


# --- layout math (fast) ------------------------------------------------------------------------


def test_default_layout_leaves_room_after_the_content() -> None:
    layout = layouts.plan_layout(256 * MIB, 400 * MIB, None)
    assert (layout.esp_start, layout.esp_size, layout.root_start) == (MIB, 256 * MIB, 257 * MIB)
    assert layout.root_size == 992 * MIB  # 400 * 1.2 + 512
    assert layout.disk_size == layout.root_start + layout.root_size + MIB
    assert all(value % MIB == 0 for value in vars(layout).values())


def test_explicit_size_gives_the_root_the_rest() -> None:
    layout = layouts.plan_layout(256 * MIB, 400 * MIB, 2048 * MIB)
    assert layout.disk_size == 2048 * MIB
    assert layout.root_size == 2048 * MIB - 257 * MIB - MIB


def test_too_small_size_says_how_much_is_needed() -> None:
    with pytest.raises(BuildError, match=r"disk.size 512M is too small.*use at least 826M"):
        layouts.plan_layout(256 * MIB, 400 * MIB, 512 * MIB)


def test_min_size_grows_the_default_layout_only() -> None:
    default = layouts.plan_layout(256 * MIB, 400 * MIB, None)
    assert layouts.plan_layout(256 * MIB, 400 * MIB, None, 1024 * MIB) == default  # smaller
    bigger = layouts.plan_layout(256 * MIB, 400 * MIB, None, 4096 * MIB)
    assert (bigger.disk_size, bigger.root_start) == (4096 * MIB, 257 * MIB)
    assert bigger.root_size == 4096 * MIB - 257 * MIB - MIB


def test_esp_grows_with_its_payload() -> None:
    assert layouts.esp_size_for(50 * MIB) == 256 * MIB
    assert layouts.esp_size_for(300 * MIB) == 362 * MIB


def test_ids_are_stable_per_seed() -> None:
    one, again, other = (layouts.derive_ids(seed) for seed in ("a", "a", "b"))
    assert one == again and one != other
    assert len({one.disk_guid, one.esp_partuuid, one.root_partuuid}) == 3
    assert len(one.esp_volume_id) == 8


def test_sfdisk_script_uses_sectors_and_ids() -> None:
    ids = layouts.derive_ids("x")
    layout = layouts.plan_layout(256 * MIB, 100 * MIB, 1024 * MIB)
    script = layouts.sfdisk_script(layout, ids, disks.BOOT_ARCHES["x86_64"].root_type)
    assert f"label-id: {ids.disk_guid}" in script
    assert f"start=2048, size=524288, type={layouts.ESP_TYPE}, uuid={ids.esp_partuuid}" in script
    assert "start=526336, size=1568768, type=4F68BCE3-" in script


def test_used_inodes_from_dumpe2fs() -> None:
    dump = (
        "Group 0: (Blocks 1-8192)\n  Free inodes: 13-15, 17-16\n"
        "Group 1: (Blocks 8193-16384)\n  Free inodes: \n"
        "Group 2: (Blocks 16385-24576)\n  Free inodes: 33-48\n"
    )
    assert layouts.used_inodes(dump, 16) == [*range(1, 13), 16, *range(17, 33)]


def test_missing_disk_tools_fail_before_mmdebstrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(disks, "missing_tools", lambda path: ["sfdisk (fdisk)"])
    text = "suite: bookworm\nkernel: true\nmirror: http://mirror.invalid/debian\ndisk: {}\n"
    recipe_dir = write_recipe(tmp_path / "recipe", text)
    with pytest.raises(BuildError, match=r"^disk: needs tools .*: sfdisk \(fdisk\); install"):
        DebianBackend().build(context(tmp_path, recipe_dir))


# --- a real build that boots (slow) ------------------------------------------------------------


@pytest.mark.parametrize("written", ["1", "abcdef0", "12345678"])
def test_vmdk_cid_is_fixed_whatever_length_qemu_img_wrote(tmp_path: Path, written: str) -> None:
    """qemu-img prints the random CID with %x, so it is sometimes shorter than 8 digits."""
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed (make host-deps)")
    raw, vmdk = tmp_path / "disk.raw", tmp_path / "disk.vmdk"
    raw.write_bytes(b"kiln" * (256 << 10))
    options = ["-o", "subformat=streamOptimized"]
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "vmdk", *options, str(raw), str(vmdk)],
        check=True,
    )
    data = bytearray(vmdk.read_bytes())
    start = data.index(b"# Disk DescriptorFile")
    end = data.index(b"\0", start)
    text = re.sub(rb"\nCID=[0-9a-f]+\n", f"\nCID={written}\n".encode(), bytes(data[start:end]))
    room = max(len(text), end - start)  # a longer CID than qemu-img's takes descriptor padding
    assert not any(data[end : start + room]), "the descriptor has no padding to grow into"
    data[start : start + room] = text.ljust(room, b"\0")
    vmdk.write_bytes(bytes(data))

    disks._set_vmdk_cid(vmdk, "6e928e6e")

    descriptor = vmdk.read_bytes()[start : end + 8].rstrip(b"\0").decode()
    assert "\nCID=6e928e6e\nparentCID=ffffffff\n" in descriptor
    assert descriptor.count("\n") == text.count(b"\n")
    back = tmp_path / "back.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(vmdk), str(back)], check=True)
    assert back.read_bytes() == raw.read_bytes()


def _build(base: Path) -> list[Path]:
    log = (base / "build.log").open("a")
    ctx = BuildContext(
        job_id=base.name,
        arch="x86_64",
        recipe_type="kiln-debian",
        recipe_dir=base / "recipe",
        work_dir=base / "work",
        out_dir=base / "out",
        template={},
        source_date_epoch=EPOCH,
        image_root_archive_name="image",
        log=lambda line: log.write(line + "\n"),
    )
    (base / "recipe").mkdir(parents=True)
    (base / "recipe" / "recipe.yaml").write_text(DISK_RECIPE)
    (base / "work").mkdir()
    backend = DebianBackend()
    with log:
        backend.wait_for_repos(ctx)
        artifacts = backend.build(ctx)
    types = [artifact.type for artifact in artifacts]
    assert types == [
        *(ROOTFS_SQUASHFS, KERNEL, INITRD, DISK_QCOW2, DISK_RAW, DISK_VMDK),
        *(PACKAGES_JSON, BUILD_PLAN_JSON, SBOM_CYCLONEDX, SBOM_SPDX),
    ]
    return [artifact.path for artifact in artifacts]


@pytest.fixture(scope="module")
def disk_build(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    if platform.machine() != "x86_64":
        detail = f"the boot test builds and boots x86_64 images natively, not {platform.machine()}"
        pytest.skip(skip_policy.other_machine_arch(detail))
    reason = DebianBackend().unavailable_reason("x86_64")
    missing = disks.missing_tools(os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if reason or missing:
        pytest.skip(f"cannot build disk images here: {reason or ', '.join(missing)}")
    return _build(tmp_path_factory.mktemp("disk-1"))


@pytest.mark.slow
def test_disk_has_esp_and_root(disk_build: list[Path]) -> None:
    raw = disk_build[4]
    assert raw.stat().st_size == 3 << 30  # min_size: more than the content needs
    table = subprocess.run(
        ["sfdisk", "--dump", str(raw)], check=True, capture_output=True, text=True
    ).stdout
    assert "label: gpt" in table and "type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B" in table
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", str(disk_build[3])],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert '"format": "qcow2"' in info
    same = subprocess.run(["qemu-img", "compare", str(raw), str(disk_build[5])], check=False)
    assert same.returncode == 0  # the vmdk holds the same disk


@pytest.mark.slow
def test_disk_boots_to_a_login_prompt(disk_build: list[Path], tmp_path: Path) -> None:
    text = boot_to_login(disk_build[3], tmp_path)
    assert "kiln-disk login:" in text
