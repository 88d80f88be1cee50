"""The zip reader: checks a zip archive under the shared archive limits (archive_safety.py)
without extracting it anywhere.

For the coming OMPS face, which receives operator-manifest zips; no face calls it yet
(tests/uploads/test_zip_safety.py exercises it). A zip is read from its end, so the chunks are
spooled (counted, hashed and capped on the way) before anything else. Then, in order:

1. the central directory is walked once, as zipfile will walk it, and more entries than
   ``max_members`` are refused before zipfile builds an object for each;
2. every member passes the shared member rules on what the central directory declares (name,
   kind, size; a symbolic link's target, its short data, is read for the link check), and zip's
   own: no encryption, only stored or deflate data, no name twice, no drive letter, no member
   whose data runs into the next one (the overlapping-entries bomb);
3. every member's data is decompressed and counted: declared sizes lie, so a member is refused
   as soon as it produces more than it declares, and the archive as soon as what it produced
   outgrows the ratio to the compressed bytes taken in; a member that produces less, or whose
   CRC-32 differs, is refused too.
"""

from __future__ import annotations

import re
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from typing import IO

from chalicelib.domain.uploads.archive_safety import (
    FEED_STEP,
    INFLATE_STEP,
    ArchiveLimits,
    ArchiveListing,
    ArchiveRejected,
    ExpansionGuard,
    MemberKind,
    MemberRules,
    archive_input,
)
from chalicelib.domain.uploads.hashing import StreamHasher

#: archives up to this size are spooled in memory, larger ones to a temporary file
SPOOL_IN_MEMORY = 8 * 1024 * 1024
#: the longest symbolic-link target read (PATH_MAX on Linux)
MAX_LINK_TARGET = 4096
#: flag bits of data Kiln cannot read: encrypted (0), compressed patch data (5), strong
#: encryption (6)
_UNREADABLE_FLAGS = 0x1 | 0x20 | 0x40
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_DRIVE = re.compile(r"^[A-Za-z]:")
#: what reading a malformed zip raises: zipfile's own errors, a record or data cut short, a
#: name that is not the UTF-8 its flag says, a version zipfile does not read
_UNREADABLE = (
    zipfile.BadZipFile,
    NotImplementedError,
    EOFError,
    OSError,
    zlib.error,
    struct.error,
    UnicodeDecodeError,
)

# the zip format's records (APPNOTE 4.3): signature first, little-endian
_END = struct.Struct("<4s4H2LH")  # end of central directory
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # one central-directory entry, before its name
_LOCAL = struct.Struct("<4s2B4HL2L2H")  # one local header, before its name
_END_SIG, _END64_LOCATOR_SIG, _END64_SIG = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"
_CENTRAL_SIG, _LOCAL_SIG = b"PK\x01\x02", b"PK\x03\x04"


def read_zip(chunks: Iterable[bytes], limits: ArchiveLimits) -> ArchiveListing:
    """Read the whole archive; return its listing, or raise ArchiveRejected.

    The size and sha256 are of the archive's bytes; the members' data is decompressed, counted
    and dropped."""
    hasher = StreamHasher(("sha256",))
    with tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY) as spool:
        try:
            for chunk in archive_input(chunks, hasher, limits.max_bytes):
                spool.write(chunk)
            rules = MemberRules(limits)
            _ZipCheck(spool, hasher.size, limits, rules).run()
        except _UNREADABLE as exc:
            raise ArchiveRejected(f"not a readable zip archive ({exc})") from exc
    return rules.listing(hasher)


class _ZipCheck:
    """Steps 1 to 3 of the module's docstring, on the spooled archive."""

    def __init__(
        self, spool: IO[bytes], size: int, limits: ArchiveLimits, rules: MemberRules
    ) -> None:
        self._spool = spool
        self._size = size
        self._limits = limits
        self._rules = rules
        self._guard = ExpansionGuard(limits.unpacked_cap, limits)
        self._consumed = 0  # compressed bytes the decompressors have taken in

    def run(self) -> None:
        start, length = _central_directory(self._spool, self._size)
        _count_entries(self._spool, start, length, self._limits.max_members)
        with zipfile.ZipFile(self._spool) as archive:  # reads the central directory only
            if archive.start_dir != start:  # not the directory just counted
                raise zipfile.BadZipFile("the central directory is not where its end record says")
            members = archive.infolist()
        ends = _data_bounds(members, start)
        seen: set[str] = set()
        links: set[int] = set()
        for info in members:  # what the central directory declares
            name = info.orig_filename
            _check_zip_member(info)
            kind = _kind(info)
            target = ""
            if kind == "symlink":
                if info.file_size > MAX_LINK_TARGET:
                    raise ArchiveRejected(
                        f"symbolic link '{name}' has a target longer than {MAX_LINK_TARGET} bytes"
                    )
                target = self._unpack(info, ends[id(info)]).decode("utf-8", "surrogateescape")
                links.add(id(info))
            path = self._rules.admit(name, kind, info.file_size, target)
            if path in seen:
                raise ArchiveRejected(f"member '{name}' appears more than once")
            seen.add(path)
        for info in sorted(members, key=lambda member: member.header_offset):
            if id(info) not in links:  # what the data really is
                self._unpack(info, ends[id(info)])

    def _unpack(self, info: zipfile.ZipInfo, bound: int) -> bytes:
        """Decompress one member's data, counting every byte against its declared size and the
        guard; returns the first MAX_LINK_TARGET bytes."""
        name, declared = info.orig_filename, info.file_size
        left = info.compress_size
        self._spool.seek(_data_start(self._spool, info))
        if self._spool.tell() + left > bound:
            raise ArchiveRejected(f"member '{name}' overlaps another member or the directory")
        inflater = zlib.decompressobj(-zlib.MAX_WBITS) if info.compress_type else None
        chunk = memoryview(b"")
        produced, crc, kept = 0, 0, b""
        while True:
            if inflater is None:
                piece, taken, ended = bytes(chunk), len(chunk), not left
            else:
                piece = inflater.decompress(chunk, INFLATE_STEP)
                rest = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
                taken, ended = len(chunk) - len(rest), inflater.eof
            chunk = chunk[taken:]
            self._consumed += taken
            if piece:
                produced += len(piece)
                if produced > declared:
                    raise ArchiveRejected(
                        f"member '{name}' unpacks to more than the {declared} bytes it declares"
                    )
                self._guard.count(len(piece), self._consumed)
                crc = zlib.crc32(piece, crc)
                kept += piece[: MAX_LINK_TARGET - len(kept)]
            if ended:
                break
            if not piece and not chunk:
                if not left:
                    raise EOFError(f"the compressed data of member '{name}' ends early")
                data = self._spool.read(min(FEED_STEP, left))
                if not data:
                    raise EOFError(f"the archive ends inside member '{name}'")
                left -= len(data)
                chunk = memoryview(data)
        if chunk or left:
            raise ArchiveRejected(f"member '{name}' has data after its compressed stream")
        if produced != declared:
            raise ArchiveRejected(
                f"member '{name}' unpacks to {produced} bytes, not the {declared} it declares"
            )
        if crc != info.CRC:
            raise zipfile.BadZipFile(f"bad CRC-32 for member '{name}'")
        return kept


def _check_zip_member(info: zipfile.ZipInfo) -> None:
    """Zip's own rules for one member, besides the shared ones."""
    name = info.orig_filename
    if "\0" in name:
        raise ArchiveRejected(f"member '{name}' has a NUL byte in its name")
    if _DRIVE.match(name):
        raise ArchiveRejected(f"member '{name}' has an absolute path")
    if info.flag_bits & _UNREADABLE_FLAGS:
        raise ArchiveRejected(f"member '{name}' is encrypted or patch data")
    if info.compress_type not in _METHODS:
        raise ArchiveRejected(
            f"member '{name}' is compressed with method {info.compress_type}; only stored and "
            "deflate members are read"
        )


def _kind(info: zipfile.ZipInfo) -> MemberKind:
    """From the Unix mode in the high bits of the external attributes, else from the name."""
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type == stat.S_IFLNK:
        return "symlink"
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "other"
    return "dir" if file_type == stat.S_IFDIR or info.is_dir() else "file"


def _central_directory(spool: IO[bytes], size: int) -> tuple[int, int]:
    """(offset, length) of the central directory, found as zipfile finds it: the end record
    last in the file, else the last one within a comment's reach; then its zip64 record."""
    tail_start = max(size - (1 << 16) - _END.size, 0)
    spool.seek(tail_start)
    tail = spool.read()
    if tail[-_END.size : -_END.size + 4] == _END_SIG and tail[-2:] == b"\0\0":
        at = len(tail) - _END.size
    else:
        at = tail.rfind(_END_SIG)
        if at < 0 or len(tail) - at < _END.size:
            raise zipfile.BadZipFile("File is not a zip file")
    *_, length, offset, _comment = _END.unpack_from(tail, at)
    location = tail_start + at
    zip64 = location - _END64_LOCATOR.size - _END64.size
    if zip64 >= 0:
        spool.seek(location - _END64_LOCATOR.size)
        signature, disk, _offset, disks = _END64_LOCATOR.unpack(spool.read(_END64_LOCATOR.size))
        if signature == _END64_LOCATOR_SIG:
            if disk != 0 or disks > 1:
                raise zipfile.BadZipFile("zipfiles that span multiple disks are not supported")
            spool.seek(zip64)
            record = _END64.unpack(spool.read(_END64.size))
            if record[0] == _END64_SIG:
                length, offset = record[-2:]
                location -= _END64_LOCATOR.size + _END64.size
    start = location - length  # zipfile's "concat": data prepended to the archive moves it
    if start < 0 or offset > start:
        raise zipfile.BadZipFile("Bad offset for central directory")
    return start, length


def _count_entries(spool: IO[bytes], start: int, length: int, limit: int) -> None:
    """Walk the central directory's entries as zipfile will; refuse more than ``limit``."""
    spool.seek(start)
    directory = spool.read(length)
    position = count = 0
    while position < length:
        if len(directory) - position < _CENTRAL.size:
            raise zipfile.BadZipFile("Truncated central directory")
        entry = _CENTRAL.unpack_from(directory, position)
        if entry[0] != _CENTRAL_SIG:
            raise zipfile.BadZipFile("Bad magic number for central directory")
        position += _CENTRAL.size + entry[12] + entry[13] + entry[14]  # name, extra, comment
        count += 1
        if count > limit:
            raise ArchiveRejected(f"the archive has more than {limit} members")


def _data_bounds(members: list[zipfile.ZipInfo], directory: int) -> dict[int, int]:
    """For each member (by id): where the next local header, or the central directory,
    begins; its data must end there. Of two entries sharing a header, the first is bounded by
    the second's start, which is its own, so it cannot fit."""
    ordered = sorted(members, key=lambda info: info.header_offset)
    following = [info.header_offset for info in ordered][1:] + [directory]
    return {id(info): bound for info, bound in zip(ordered, following, strict=False)}


def _data_start(spool: IO[bytes], info: zipfile.ZipInfo) -> int:
    """Where the member's data begins, after its local header, which must name it as the
    central directory does."""
    spool.seek(info.header_offset)
    header = spool.read(_LOCAL.size)
    if len(header) != _LOCAL.size:
        raise zipfile.BadZipFile("Truncated file header")
    fields = _LOCAL.unpack(header)
    if fields[0] != _LOCAL_SIG:
        raise zipfile.BadZipFile("Bad magic number for file header")
    name_length, extra_length = fields[-2:]
    name = spool.read(name_length)
    expected = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
    if name != expected:
        raise ArchiveRejected(f"member '{info.orig_filename}' has another name in its local header")
    return info.header_offset + _LOCAL.size + name_length + extra_length
