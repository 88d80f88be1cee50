"""A Cachito request's bundle archive, and the guard every archive a request unpacks passes.

``build_bundle`` writes ``app/`` and ``deps/`` (always present, possibly empty) as a
reproducible tar.gz: entries in sorted order, one fixed mtime, owner 0:0 without names, modes
0644/0755 (0777 for symlinks), no gzip timestamp or file name; devices, FIFOs and sockets are
left out. The same tree gives the same bytes, so the same sha256.

``extract_tar`` unpacks an archive only if its members' declared sizes add up to at most a
bound, with tarfile's ``tar`` filter (no absolute names, nothing written outside the target,
not even through a symlink; no setuid bits): an archive bomb is refused before anything is
written.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

from builders.cachito.errors import ValidationError

#: the bundle's top-level directories, in archive order
TOP_LEVEL = ("app", "deps")
#: no member count beyond this in an archive a request unpacks
MAX_MEMBERS = 1_000_000
_CHUNK = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Bundle:
    path: Path
    size: int
    sha256: str


class ArchiveRefused(Exception):
    """An archive too large (an archive bomb), with too many members, or unsafe to unpack."""


def build_bundle(
    root: Path,
    target: Path,
    mtime: int,
    max_bytes: int,
    log: Callable[[str], None] = print,
) -> Bundle:
    """``root/app`` and ``root/deps`` as the tar.gz ``target``; ValidationError if the files
    add up to more than ``max_bytes``."""
    (root / "deps").mkdir(parents=True, exist_ok=True)
    total = 0
    with (
        target.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as packed,
        tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for top in TOP_LEVEL:
            for path, name in _entries(root / top, top):
                info = _member(path, name, mtime)
                if info is None:
                    log(f"W: kiln: {name} is not a file, directory or symlink: left out")
                    continue
                if not info.isfile():
                    tar.addfile(info)
                    continue
                total += info.size
                if total > max_bytes:
                    raise ValidationError(
                        f"The bundle would hold more than {max_bytes} bytes, the most a "
                        "request may have"
                    )
                with path.open("rb") as content:
                    tar.addfile(info, content)
    digest = hashlib.sha256()
    with target.open("rb") as written:
        while chunk := written.read(_CHUNK):
            digest.update(chunk)
    return Bundle(target, target.stat().st_size, digest.hexdigest())


def _entries(directory: Path, name: str) -> Iterator[tuple[Path, str]]:
    """``directory`` and everything below it (symlinks not followed), parents first, each
    directory's children sorted by name."""
    stack = [(directory, name)]
    while stack:
        path, arcname = stack.pop()
        yield path, arcname
        if path.is_symlink() or not path.is_dir():
            continue
        with os.scandir(path) as listing:
            children = sorted(listing, key=lambda entry: entry.name)
        # pushed in reverse so they come off the stack in order
        for child in reversed(children):
            stack.append((Path(child.path), f"{arcname}/{child.name}"))


def _member(path: Path, name: str, mtime: int) -> tarfile.TarInfo | None:
    facts = path.lstat()
    info = tarfile.TarInfo(name)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISREG(facts.st_mode):
        info.type = tarfile.REGTYPE
        info.size = facts.st_size
        info.mode = 0o755 if facts.st_mode & 0o111 else 0o644
    elif stat.S_ISDIR(facts.st_mode):
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    elif stat.S_ISLNK(facts.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        info.mode = 0o777
    else:
        return None
    return info


def extract_tar(
    archive: Path, target: Path, max_bytes: int, max_members: int = MAX_MEMBERS
) -> None:
    """Unpack ``archive`` (tar, optionally compressed) into ``target``. ArchiveRefused if its
    members declare more than ``max_bytes`` or number more than ``max_members``, or one would
    land outside ``target``; devices and FIFOs are skipped."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            members: list[tarfile.TarInfo] = []
            total = 0
            for member in tar:
                if len(members) >= max_members:
                    raise ArchiveRefused(f"{archive.name} has more than {max_members} members")
                if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
                    continue
                total += member.size
                if total > max_bytes:
                    raise ArchiveRefused(f"{archive.name} unpacks to more than {max_bytes} bytes")
                members.append(member)
            tar.extractall(target, members=members, filter="tar")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveRefused(f"{archive.name} cannot be unpacked: {exc}") from exc
