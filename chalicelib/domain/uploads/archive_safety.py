"""Archive safety, whatever the format: the limits, the member rules and the expansion guard
that the archive readers share.

Used by tar_gz.py (IMS recipe archives, through domain/ims/recipe_archive.py) and zip_archive.py
(operator-manifest zips for the coming OMPS face). A reader turns each member into a name, a
kind, a declared size and a link target and hands it to ``MemberRules.admit``; it feeds what it
decompresses to an ``ExpansionGuard``; it reads the compressed bytes through ``archive_input``.
Every refusal is an ``ArchiveRejected`` whose message says why.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Iterable, Iterator
from typing import Literal

from chalicelib.domain.uploads.hashing import StreamHasher, hashed
from chalicelib.domain.uploads.rejection import TooLarge, UploadRejected

#: Decompression-bomb guard: the archive is refused as soon as the bytes it has unpacked to
#: exceed MAX_EXPANSION_RATIO times the compressed bytes read so far (once past
#: EXPANSION_FLOOR). gzip shrinks what recipes hold -- text, scripts, configuration, small
#: binaries -- 2 to 10 times, verbose logs or XML 20 to 30 times; deflate's own ceiling is about
#: 1030 times, reached only by long runs of one byte, which is what a bomb is made of. 100 leaves
#: realistic content several times the headroom it needs and stops a 1 GiB run of zeros after
#: about 8 MiB of work instead of 1 GiB.
MAX_EXPANSION_RATIO = 100
#: Below this many unpacked bytes the ratio is not checked: a small recipe with one very
#: repetitive file (a generated config, a zero-filled placeholder) compresses past any ratio,
#: and unpacking 8 MiB costs a few milliseconds.
EXPANSION_FLOOR = 8 * 1024 * 1024
#: most bytes one decompressor call may produce, so the limits are checked at least this often
INFLATE_STEP = 256 * 1024
#: most compressed bytes given to one decompressor call (what it leaves over is copied each call)
FEED_STEP = 64 * 1024

#: what a member is, as the rules see it ("other": a device, fifo or socket)
MemberKind = Literal["file", "dir", "symlink", "hardlink", "other"]


class ArchiveRejected(UploadRejected):
    """The archive is unsafe or unusable; the message says why."""


@dataclasses.dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may be: ``max_bytes`` compressed, ``max_members`` members, and unpacked
    at most ``max_unpacked_bytes`` (default 8 times ``max_bytes``) and at most ``max_ratio``
    times the compressed bytes read (once past ``ratio_floor``)."""

    max_bytes: int
    max_members: int
    max_unpacked_bytes: int | None = None
    max_ratio: int = MAX_EXPANSION_RATIO
    ratio_floor: int = EXPANSION_FLOOR

    @property
    def unpacked_cap(self) -> int:
        """The most the members may unpack to. No archive within max_bytes can unpack to more
        than the ratio allows, so neither may the sizes its headers declare."""
        return min(
            self.max_unpacked_bytes or self.max_bytes * 8,
            max(self.ratio_floor, self.max_ratio * self.max_bytes),
        )


@dataclasses.dataclass(frozen=True)
class ArchiveListing:
    """An archive that passed: sha256 and size of its compressed bytes, how many members, and
    the regular files at its top level (normalised names)."""

    sha256: str
    size: int
    members: int
    top_level_files: frozenset[str]


def archive_input(chunks: Iterable[bytes], hasher: StreamHasher, max_bytes: int) -> Iterator[bytes]:
    """The archive's compressed chunks, counted and hashed, refused past ``max_bytes``."""
    try:
        yield from hashed(chunks, hasher, max_bytes)
    except TooLarge:
        raise ArchiveRejected(
            f"the archive is larger than the limit of {max_bytes} bytes"
        ) from None


class DeclaredBudget:
    """The sizes the archive's headers declare, against the unpacked cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0

    def take(self, size: int) -> None:
        self.used += size
        if self.used > self.cap:
            raise ArchiveRejected(f"the archive unpacks to more than {self.cap} bytes")


class ExpansionGuard:
    """The bytes actually decompressed, against ``cap`` and the ratio to the compressed bytes
    the decompressor has taken in: checked on every piece, so a header that lies about a size
    does not matter."""

    def __init__(self, cap: int, limits: ArchiveLimits) -> None:
        self.cap = cap
        self.unpacked = 0
        self._max_ratio = limits.max_ratio
        self._ratio_floor = limits.ratio_floor

    def count(self, produced: int, consumed: int) -> None:
        """``produced`` more bytes came out; ``consumed`` compressed bytes went in so far."""
        self.unpacked += produced
        if self.unpacked > self.cap:
            raise ArchiveRejected(f"the archive unpacks to more than {self.cap} bytes")
        if self.unpacked > max(self._ratio_floor, self._max_ratio * consumed):
            raise ArchiveRejected(
                f"the archive expands more than {self._max_ratio} times its compressed size"
            )


def safe_path(name: str) -> str:
    """The member's normalised path; rejects absolute paths and '..'."""
    if name.startswith("/") or name.startswith("\\"):
        raise ArchiveRejected(f"member '{name}' has an absolute path")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise ArchiveRejected(f"member '{name}' climbs out of the archive with '..'")
    return posixpath.normpath(name)


def check_link(name: str, path: str, target: str, symbolic: bool) -> None:
    """A link must stay inside the archive: a symbolic link's target is taken from the link's
    own directory, a hard link's from the archive's top."""
    if target.startswith("/"):
        raise ArchiveRejected(f"link '{name}' points to an absolute path '{target}'")
    base = posixpath.dirname(path) if symbolic else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../"):
        raise ArchiveRejected(f"link '{name}' points outside the archive ('{target}')")


class MemberRules:
    """The checks every member passes, in order: the member count, a safe name, links that
    stay inside and no devices, fifos or sockets, then its declared size against the budget."""

    def __init__(self, limits: ArchiveLimits) -> None:
        self.max_members = limits.max_members
        self.budget = DeclaredBudget(limits.unpacked_cap)
        self.count = 0
        self.top_level_files: set[str] = set()

    def admit(self, name: str, kind: MemberKind, size: int, link_target: str = "") -> str:
        """Check one member; returns its normalised path or raises ArchiveRejected."""
        self.count += 1
        if self.count > self.max_members:
            raise ArchiveRejected(f"the archive has more than {self.max_members} members")
        path = safe_path(name)
        if kind in ("symlink", "hardlink"):
            check_link(name, path, link_target, symbolic=kind == "symlink")
        elif kind == "other":
            raise ArchiveRejected(f"member '{name}' is a device, fifo or socket")
        self.budget.take(size)
        if kind == "file" and "/" not in path:
            self.top_level_files.add(path)
        return path

    def listing(self, hasher: StreamHasher) -> ArchiveListing:
        """What passed; an archive without members is refused."""
        if self.count == 0:
            raise ArchiveRejected("the archive is empty")
        return ArchiveListing(
            sha256=hasher.hexdigest("sha256"),
            size=hasher.size,
            members=self.count,
            top_level_files=frozenset(self.top_level_files),
        )
