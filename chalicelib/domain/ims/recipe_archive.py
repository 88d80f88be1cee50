"""Checks a recipe archive (tar.gz) before any build host unpacks it. Pure: no AWS here."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import posixpath
import re
import tarfile
import zlib
from collections.abc import Iterable

#: the file each recipe type needs at the archive's top level (any one of them)
ENTRY_FILES: dict[str, tuple[str, ...]] = {
    "kiln-debian": ("recipe.yaml",),
    "kiln-noop": ("recipe.yaml",),
    "kiwi-ng": ("config.xml", "config.kiwi", "appliance.kiwi"),
}

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
#: most bytes one zlib call may produce, so the limits are checked at least this often
_INFLATE_STEP = 256 * 1024
#: most compressed bytes given to one zlib call (what it leaves over is copied each call)
_FEED_STEP = 64 * 1024
_NOT_ZERO = re.compile(rb"[^\0]")
#: what a tar stream adds to its members' contents: per member a header, padding to the next
#: 512-byte block and room for a pax or GNU long-name header with its padding; then the
#: end-of-archive blocks and padding to the record size, with room to spare
_TAR_BYTES_PER_MEMBER = 4 * tarfile.BLOCKSIZE
_TAR_BYTES_AT_END = 64 * 1024
#: gzip, pigz and `tar -z` write one gzip member; archives joined with `cat` have a few; block
#: gzip (bgzip) writes one per 64 KiB unpacked, some 8000 for the unpacked cap. Each costs a
#: few microseconds even when empty, so a stream of millions of empty ones is refused.
MAX_GZIP_MEMBERS = 16384
#: pax and GNU long-name/long-link headers that may precede one member: a member needs at
#: most a global and an extended pax header, or a long name and a long link; tarfile reads a
#: chain of them recursively, so a long one would exhaust the stack.
MAX_EXTENDED_HEADERS = 8
#: header types whose data tarfile reads into memory before the member it describes
_EXTENDED_HEADERS = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)


class ArchiveRejected(Exception):
    """The archive is unsafe or unusable; the message says why."""


@dataclasses.dataclass(frozen=True)
class ArchiveFacts:
    sha256: str
    size: int
    members: int


class _Budget:
    """The sizes the archive's headers declare, against the unpacked cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0
        self.chained = 0  # extended headers being read before the coming member

    def take(self, size: int) -> None:
        self.used += size
        if self.used > self.cap:
            raise ArchiveRejected(f"the archive unpacks to more than {self.cap} bytes")


class _InflatingReader(io.RawIOBase):
    """The archive's tar stream: reads the compressed chunks (counting and hashing them, with a
    size cap), decompresses every gzip member in turn and refuses, while it unpacks, a stream
    that grows past ``max_unpacked`` bytes or more than ``max_ratio`` times the compressed bytes
    it came from (once past ``ratio_floor``)."""

    def __init__(
        self,
        chunks: Iterable[bytes],
        max_bytes: int,
        max_unpacked: int,
        max_ratio: int = MAX_EXPANSION_RATIO,
        ratio_floor: int = EXPANSION_FLOOR,
    ) -> None:
        self._chunks = iter(chunks)
        self.size = 0
        self.digest = hashlib.sha256()
        self._max = max_bytes
        self._max_unpacked = max_unpacked
        self._max_ratio = max_ratio
        self._ratio_floor = ratio_floor
        self.unpacked = 0
        self._consumed = 0  # compressed bytes the decompressors have taken in
        self._chunk = memoryview(b"")  # the compressed chunk being decompressed
        self._offset = 0  # how much of it the decompressors have taken
        self._inflater: zlib._Decompress | None = None  # None between gzip members
        self._members = 0
        self._out = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._out:
            piece = self._inflate()
            if not piece:
                return 0
            self._out = memoryview(piece)
        n = min(len(target), len(self._out))
        target[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def drain(self) -> None:
        self._out = memoryview(b"")
        while self._inflate():
            pass

    def _pull(self) -> bool:
        """Move on to the next compressed chunk; False at the end."""
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        self.size += len(chunk)
        if self.size > self._max:
            raise ArchiveRejected(f"the archive is larger than the limit of {self._max} bytes")
        self.digest.update(chunk)
        self._chunk, self._offset = memoryview(chunk), 0
        return True

    def _inflate(self) -> bytes:
        """The next piece of the tar stream (at most _INFLATE_STEP bytes); b'' at its end."""
        while True:
            if self._inflater is None:
                if self._offset == len(self._chunk):
                    if not self._pull():
                        return b""
                    continue
                # between gzip members: zero padding is skipped, as gzip itself does
                found = _NOT_ZERO.search(self._chunk, self._offset)
                if found is None:
                    self._offset = len(self._chunk)
                    continue
                self._offset = found.start()
                self._members += 1
                if self._members > MAX_GZIP_MEMBERS:
                    raise ArchiveRejected(
                        f"the archive is made of more than {MAX_GZIP_MEMBERS} gzip members"
                    )
                self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            inflater = self._inflater
            given = self._chunk[self._offset : self._offset + _FEED_STEP]
            piece = inflater.decompress(given, _INFLATE_STEP)
            if inflater.eof:
                taken = len(given) - len(inflater.unused_data)
                self._inflater = None
            else:
                taken = len(given) - len(inflater.unconsumed_tail)
            self._offset += taken
            self._consumed += taken
            if piece:
                self._count(len(piece))
                return piece
            in_member = self._inflater is not None
            if in_member and self._offset == len(self._chunk) and not self._pull():
                raise EOFError("the compressed stream ends inside a gzip member")

    def _count(self, produced: int) -> None:
        self.unpacked += produced
        if self.unpacked > self._max_unpacked:
            raise ArchiveRejected(f"the archive unpacks to more than {self._max_unpacked} bytes")
        if self.unpacked > max(self._ratio_floor, self._max_ratio * self._consumed):
            raise ArchiveRejected(
                f"the archive expands more than {self._max_ratio} times its compressed size"
            )


def _checked_tarinfo(budget: _Budget) -> type[tarfile.TarInfo]:
    """A TarInfo that charges pax and GNU long-name data to the budget before tarfile reads it
    into memory, and bounds how many such headers one member may have (_proc_member is the
    hook tarfile leaves for subclasses)."""

    class CheckedTarInfo(tarfile.TarInfo):
        def _proc_member(self, tarfile: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
            if self.type not in _EXTENDED_HEADERS:
                return super()._proc_member(tarfile)  # type: ignore[misc,no-any-return]
            budget.take(self.size)
            budget.chained += 1
            if budget.chained > MAX_EXTENDED_HEADERS:
                raise ArchiveRejected(
                    f"a member of the archive has more than {MAX_EXTENDED_HEADERS} pax or "
                    "GNU extended headers"
                )
            try:  # tarfile reads the member this header describes from here
                return super()._proc_member(tarfile)  # type: ignore[misc,no-any-return]
            finally:
                budget.chained -= 1

    return CheckedTarInfo


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
    """Read the whole archive once; return its sha256 and size, or raise ArchiveRejected.

    The size and sha256 are of the compressed bytes. Unpacking is bounded: a member whose
    declared size would take the archive past the unpacked cap is refused at its header, and
    the decompressed stream is refused as soon as it outgrows that cap (plus the tar format's
    own blocks) or MAX_EXPANSION_RATIO times the compressed bytes read so far.
    """
    # no archive within max_bytes can unpack to more than the ratio allows, so neither may the
    # sizes its headers declare
    unpacked_cap = min(
        max_unpacked_bytes or max_bytes * 8,
        max(EXPANSION_FLOOR, MAX_EXPANSION_RATIO * max_bytes),
    )
    stream_cap = unpacked_cap + (max_members + 1) * _TAR_BYTES_PER_MEMBER + _TAR_BYTES_AT_END
    reader = _InflatingReader(chunks, max_bytes, stream_cap)
    budget = _Budget(unpacked_cap)
    count = 0
    top_level: set[str] = set()
    try:
        with tarfile.open(
            fileobj=io.BufferedReader(reader, _INFLATE_STEP),
            mode="r|",
            bufsize=_INFLATE_STEP,
            tarinfo=_checked_tarinfo(budget),
        ) as tar:
            for member in tar:
                count += 1
                if count > max_members:
                    raise ArchiveRejected(f"the archive has more than {max_members} members")
                path = _inside(member.name)
                if member.issym() or member.islnk():
                    _check_link(member, path)
                elif not (member.isfile() or member.isdir()):
                    raise ArchiveRejected(f"member '{member.name}' is a device, fifo or socket")
                budget.take(member.size)
                if member.isfile() and "/" not in path:
                    top_level.add(path)
        reader.drain()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ArchiveRejected(f"not a readable tar.gz archive ({exc})") from exc
    if count == 0:
        raise ArchiveRejected("the archive is empty")
    needed = ENTRY_FILES.get(recipe_type)
    if needed and not top_level.intersection(needed):
        raise ArchiveRejected(
            f"a {recipe_type} recipe needs {' or '.join(needed)} at the archive's top level"
        )
    return ArchiveFacts(sha256=reader.digest.hexdigest(), size=reader.size, members=count)
