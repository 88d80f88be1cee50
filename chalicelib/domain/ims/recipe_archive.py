"""Checks a recipe archive (tar.gz) before any build host unpacks it. Pure: no AWS here.

The reading and the safety checks are the shared upload checks (domain/uploads: tar_gz.py
under archive_safety.py's limits); what is IMS's own is the entry file each recipe type needs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from chalicelib.domain.uploads.archive_safety import ArchiveLimits, ArchiveRejected
from chalicelib.domain.uploads.tar_gz import read_tar_gz

__all__ = ["ENTRY_FILES", "ArchiveFacts", "ArchiveRejected", "inspect_archive"]

#: the file each recipe type needs at the archive's top level (any one of them)
ENTRY_FILES: dict[str, tuple[str, ...]] = {
    "kiln-debian": ("recipe.yaml",),
    "kiln-noop": ("recipe.yaml",),
    "kiwi-ng": ("config.xml", "config.kiwi", "appliance.kiwi"),
}


@dataclasses.dataclass(frozen=True)
class ArchiveFacts:
    sha256: str
    size: int
    members: int


def inspect_archive(
    chunks: Iterable[bytes],
    recipe_type: str,
    max_bytes: int,
    max_members: int,
    max_unpacked_bytes: int | None = None,
) -> ArchiveFacts:
    """Read the whole archive once; return its sha256 and size, or raise ArchiveRejected.

    The size and sha256 are of the compressed bytes; the limits and how unpacking is bounded
    are read_tar_gz's (domain/uploads/tar_gz.py). Then the recipe type's entry file must be
    among the archive's top-level files.
    """
    limits = ArchiveLimits(max_bytes, max_members, max_unpacked_bytes)
    listing = read_tar_gz(chunks, limits)
    needed = ENTRY_FILES.get(recipe_type)
    if needed and not listing.top_level_files.intersection(needed):
        raise ArchiveRejected(
            f"a {recipe_type} recipe needs {' or '.join(needed)} at the archive's top level"
        )
    return ArchiveFacts(sha256=listing.sha256, size=listing.size, members=listing.members)
