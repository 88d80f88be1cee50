"""Checks a recipe archive (tar.gz) before any build host unpacks it. Pure: no AWS here."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import posixpath
import tarfile
from collections.abc import Iterable

#: the file each recipe type needs at the archive's top level (any one of them)
ENTRY_FILES: dict[str, tuple[str, ...]] = {
    "kiln-debian": ("recipe.yaml",),
    "kiln-noop": ("recipe.yaml",),
    "kiwi-ng": ("config.xml", "config.kiwi", "appliance.kiwi"),
}


class ArchiveRejected(Exception):
    """The archive is unsafe or unusable; the message says why."""


@dataclasses.dataclass(frozen=True)
class ArchiveFacts:
    sha256: str
    size: int
    members: int


class _HashingReader(io.RawIOBase):
    """Feeds tarfile while counting and hashing the compressed bytes, with a size cap."""

    def __init__(self, chunks: Iterable[bytes], max_bytes: int) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""
        self.size = 0
        self.digest = hashlib.sha256()
        self._max = max_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self.size += len(chunk)
            if self.size > self._max:
                raise ArchiveRejected(f"the archive is larger than the limit of {self._max} bytes")
            self.digest.update(chunk)
            self._buffer = chunk
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def drain(self) -> None:
        while self.readinto(bytearray(1024 * 1024)):
            pass


def _inside(name: str) -> str:
    """The member's normalised path; rejects absolute paths and '..'."""
    if name.startswith("/") or name.startswith("\\"):
        raise ArchiveRejected(f"member '{name}' has an absolute path")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise ArchiveRejected(f"member '{name}' climbs out of the archive with '..'")
    return posixpath.normpath(name)


def _check_link(member: tarfile.TarInfo, path: str) -> None:
    target = member.linkname
    if target.startswith("/"):
        raise ArchiveRejected(f"link '{member.name}' points to an absolute path '{target}'")
    base = posixpath.dirname(path) if member.issym() else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../"):
        raise ArchiveRejected(f"link '{member.name}' points outside the archive ('{target}')")


def inspect_archive(
    chunks: Iterable[bytes],
    recipe_type: str,
    max_bytes: int,
    max_members: int,
    max_unpacked_bytes: int | None = None,
) -> ArchiveFacts:
    """Read the whole archive once; return its sha256 and size, or raise ArchiveRejected."""
    reader = _HashingReader(chunks, max_bytes)
    unpacked_cap = max_unpacked_bytes or max_bytes * 8
    unpacked = 0
    count = 0
    top_level: set[str] = set()
    try:
        with tarfile.open(fileobj=io.BufferedReader(reader), mode="r|gz") as tar:
            for member in tar:
                count += 1
                if count > max_members:
                    raise ArchiveRejected(f"the archive has more than {max_members} members")
                path = _inside(member.name)
                if member.issym() or member.islnk():
                    _check_link(member, path)
                elif not (member.isfile() or member.isdir()):
                    raise ArchiveRejected(f"member '{member.name}' is a device, fifo or socket")
                unpacked += member.size
                if unpacked > unpacked_cap:
                    raise ArchiveRejected(f"the archive unpacks to more than {unpacked_cap} bytes")
                if member.isfile() and "/" not in path:
                    top_level.add(path)
        reader.drain()
    except (tarfile.TarError, EOFError, OSError, _zlib_error()) as exc:
        raise ArchiveRejected(f"not a readable tar.gz archive ({exc})") from exc
    if count == 0:
        raise ArchiveRejected("the archive is empty")
    needed = ENTRY_FILES.get(recipe_type)
    if needed and not top_level.intersection(needed):
        raise ArchiveRejected(
            f"a {recipe_type} recipe needs {' or '.join(needed)} at the archive's top level"
        )
    return ArchiveFacts(sha256=reader.digest.hexdigest(), size=reader.size, members=count)


def _zlib_error() -> type[Exception]:
    import zlib

    return zlib.error
