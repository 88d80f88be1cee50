"""The tar.gz reader: reads a gzip-compressed tar archive once, as a stream, under the shared
archive limits (archive_safety.py), without unpacking it anywhere.

Used by IMS recipe archives (domain/ims/recipe_archive.py), which adds what a recipe needs.
Besides the shared member rules it bounds what is particular to tar.gz: gzip members (a stream
of many empty ones), pax and GNU extended headers (tarfile reads their data into memory and
chains them recursively) and the tar format's own blocks.
"""

from __future__ import annotations

import io
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator

from chalicelib.domain.uploads.archive_safety import (
    FEED_STEP,
    INFLATE_STEP,
    ArchiveLimits,
    ArchiveListing,
    ArchiveRejected,
    DeclaredBudget,
    ExpansionGuard,
    MemberKind,
    MemberRules,
    archive_input,
)
from chalicelib.domain.uploads.hashing import StreamHasher

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


class _InflatingReader(io.RawIOBase):
    """The archive's tar stream: takes the compressed chunks (already counted, hashed and
    capped by archive_input), decompresses every gzip member in turn and lets ``guard`` refuse,
    while it unpacks, a stream that grows too large or expands too much."""

    def __init__(self, compressed: Iterator[bytes], guard: ExpansionGuard) -> None:
        self._chunks = compressed
        self._guard = guard
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
        self._chunk, self._offset = memoryview(chunk), 0
        return True

    def _inflate(self) -> bytes:
        """The next piece of the tar stream (at most INFLATE_STEP bytes); b'' at its end."""
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
            given = self._chunk[self._offset : self._offset + FEED_STEP]
            piece = inflater.decompress(given, INFLATE_STEP)
            if inflater.eof:
                taken = len(given) - len(inflater.unused_data)
                self._inflater = None
            else:
                taken = len(given) - len(inflater.unconsumed_tail)
            self._offset += taken
            self._consumed += taken
            if piece:
                self._guard.count(len(piece), self._consumed)
                return piece
            in_member = self._inflater is not None
            if in_member and self._offset == len(self._chunk) and not self._pull():
                raise EOFError("the compressed stream ends inside a gzip member")


def _checked_tarinfo(budget: DeclaredBudget) -> type[tarfile.TarInfo]:
    """A TarInfo that charges pax and GNU long-name data to the budget before tarfile reads it
    into memory, and bounds how many such headers one member may have (_proc_member is the
    hook tarfile leaves for subclasses)."""
    chained = 0  # extended headers being read before the coming member

    class CheckedTarInfo(tarfile.TarInfo):
        def _proc_member(self, tarfile: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
            nonlocal chained
            if self.type not in _EXTENDED_HEADERS:
                return super()._proc_member(tarfile)  # type: ignore[misc,no-any-return]
            budget.take(self.size)
            chained += 1
            if chained > MAX_EXTENDED_HEADERS:
                raise ArchiveRejected(
                    f"a member of the archive has more than {MAX_EXTENDED_HEADERS} pax or "
                    "GNU extended headers"
                )
            try:  # tarfile reads the member this header describes from here
                return super()._proc_member(tarfile)  # type: ignore[misc,no-any-return]
            finally:
                chained -= 1

    return CheckedTarInfo


def _kind(member: tarfile.TarInfo) -> MemberKind:
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.isfile():
        return "file"
    return "dir" if member.isdir() else "other"


def read_tar_gz(chunks: Iterable[bytes], limits: ArchiveLimits) -> ArchiveListing:
    """Read the whole archive once; return its listing, or raise ArchiveRejected.

    The size and sha256 are of the compressed bytes. Unpacking is bounded: a member whose
    declared size would take the archive past the unpacked cap is refused at its header, and
    the decompressed stream is refused as soon as it outgrows that cap (plus the tar format's
    own blocks) or ``limits.max_ratio`` times the compressed bytes read so far.
    """
    hasher = StreamHasher(("sha256",))
    stream_cap = (
        limits.unpacked_cap + (limits.max_members + 1) * _TAR_BYTES_PER_MEMBER + _TAR_BYTES_AT_END
    )
    reader = _InflatingReader(
        archive_input(chunks, hasher, limits.max_bytes), ExpansionGuard(stream_cap, limits)
    )
    rules = MemberRules(limits)
    try:
        with tarfile.open(
            fileobj=io.BufferedReader(reader, INFLATE_STEP),
            mode="r|",
            bufsize=INFLATE_STEP,
            tarinfo=_checked_tarinfo(rules.budget),
        ) as tar:
            for member in tar:
                rules.admit(member.name, _kind(member), member.size, member.linkname)
        reader.drain()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ArchiveRejected(f"not a readable tar.gz archive ({exc})") from exc
    return rules.listing(hasher)
