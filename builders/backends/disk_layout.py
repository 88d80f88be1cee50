"""The layout of a kiln-debian disk image: partition sizes, GUIDs and file system ids, the
sfdisk script, and which ext4 inodes are in use. Pure python; disk_image.py runs the tools.
"""

from __future__ import annotations

import dataclasses
import re
import uuid

from builders.backends.base import BuildError

MIB = 1 << 20
ESP_MIN_SIZE = 256 * MIB
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"


@dataclasses.dataclass(frozen=True)
class Layout:
    """Byte offsets and sizes, all whole MiB: [1 MiB GPT][ESP][root][1 MiB backup GPT]."""

    disk_size: int
    esp_start: int
    esp_size: int
    root_start: int
    root_size: int


@dataclasses.dataclass(frozen=True)
class Ids:
    disk_guid: str
    esp_partuuid: str
    root_partuuid: str
    root_fs_uuid: str
    esp_volume_id: str  # 8 hex digits (FAT serial)


def round_mib(size: float) -> int:
    return -(-int(size) // MIB) * MIB


def esp_size_for(payload: int) -> int:
    return max(ESP_MIN_SIZE, round_mib(payload * 1.1 + 32 * MIB))


def root_minimum(used: int) -> int:
    """Smallest root partition mkfs.ext4 -d can fill: content + ext4 metadata and journal."""
    return round_mib(used * 1.1 + 128 * MIB)


def plan_layout(
    esp_size: int, root_used: int, disk_size: int | None, min_size: int | None = None
) -> Layout:
    """The partition layout. With no disk_size the root gets its content + 20 % + 512 MiB, or
    more to make the disk min_size; a disk_size is exact (BuildError if the content needs more).
    """
    esp_start = MIB
    root_start = esp_start + esp_size
    if disk_size is None:
        root_size = round_mib(root_used * 1.2 + 512 * MIB)
        disk_size = root_start + root_size + MIB
        if min_size is not None and disk_size < min_size:
            disk_size = round_mib(min_size)
            root_size = disk_size - root_start - MIB
    else:
        root_size = disk_size - root_start - MIB
        needed = root_start + root_minimum(root_used) + MIB
        if disk_size < needed:
            raise BuildError(
                f"disk.size {disk_size // MIB}M is too small: the root file system holds "
                f"{root_used // MIB} MiB and the EFI partition {esp_size // MIB} MiB; "
                f"use at least {-(-needed // MIB)}M or leave size out"
            )
    return Layout(disk_size, esp_start, esp_size, root_start, root_size)


def derive_ids(seed: str) -> Ids:
    def make(name: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kiln-disk:{seed}:{name}"))

    return Ids(
        disk_guid=make("disk"),
        esp_partuuid=make("esp"),
        root_partuuid=make("root-partition"),
        root_fs_uuid=make("root-filesystem"),
        esp_volume_id=make("esp-volume").replace("-", "")[:8].upper(),
    )


def sfdisk_script(layout: Layout, ids: Ids, root_type: str) -> str:
    sector = 512
    return (
        "label: gpt\n"
        f"label-id: {ids.disk_guid}\n"
        "unit: sectors\n"
        f"start={layout.esp_start // sector}, size={layout.esp_size // sector}, "
        f'type={ESP_TYPE}, uuid={ids.esp_partuuid}, name="esp"\n'
        f"start={layout.root_start // sector}, size={layout.root_size // sector}, "
        f'type={root_type}, uuid={ids.root_partuuid}, name="root"\n'
    )


def used_inodes(dumpe2fs: str, inodes_per_group: int) -> list[int]:
    """Inode numbers in use, from ``dumpe2fs`` output (each group's 'Free inodes:' ranges)."""
    used: list[int] = []
    group: int | None = None
    for line in dumpe2fs.splitlines():
        if match := re.match(r"^Group (\d+):", line):
            group = int(match.group(1))
        elif group is not None and (match := re.match(r"^\s+Free inodes:\s*(.*)$", line)):
            free: set[int] = set()
            for part in filter(None, (p.strip() for p in match.group(1).split(","))):
                low, _, high = part.partition("-")
                free.update(range(int(low), int(high or low) + 1))
            first = group * inodes_per_group + 1
            used += [ino for ino in range(first, first + inodes_per_group) if ino not in free]
            group = None
    return used
