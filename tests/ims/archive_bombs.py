"""Decompression bombs for recipe archives, built without holding or compressing their whole
payload: a unit (one mebibyte of zeros) is compressed once after a full flush, so its deflate
block refers to nothing before it and can be repeated; only the CRC runs over every copy.
Used by tests/ims/test_archive_bombs.py and bench/archive_bombs.py."""

from __future__ import annotations

import gzip
import struct
import tarfile
import zlib

MiB = 1024 * 1024
BLOCK = tarfile.BLOCKSIZE
END_OF_ARCHIVE = bytes(2 * BLOCK)
ZEROS = bytes(MiB)


def gzip_repeating(head: bytes, unit: bytes, count: int, tail: bytes = b"") -> bytes:
    """One valid gzip member of ``head``, ``unit`` ``count`` times, then ``tail``."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    start = deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(unit) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.compress(tail) + deflate.flush()
    crc = zlib.crc32(head)
    for _ in range(count):
        crc = zlib.crc32(unit, crc)
    crc = zlib.crc32(tail, crc)
    size = len(head) + count * len(unit) + len(tail)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # deflate, no name, no mtime, unix
    return header + start + block * count + end + struct.pack("<II", crc, size % 2**32)


def tar_header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def tar_file(name: str, data: bytes) -> bytes:
    """A member header and its data padded to whole blocks."""
    return tar_header(name, len(data)) + data + bytes(-len(data) % BLOCK)


RECIPE_MEMBER = tar_file("recipe.yaml", b"name: bomb\n")


def zeros_bomb(mib: int) -> bytes:
    """A tar whose second member is ``mib`` MiB of zeros, declared honestly in its header."""
    head = RECIPE_MEMBER + tar_header("zeros.img", mib * MiB)
    return gzip_repeating(head, ZEROS, mib, END_OF_ARCHIVE)


def lying_bomb() -> bytes:
    """Headers declaring a few bytes, then 1 GiB of zeros: to tar, end-of-archive padding."""
    return gzip_repeating(RECIPE_MEMBER + tar_file("notes.txt", b"ten bytes\n"), ZEROS, 1024)


def concatenated_bomb() -> bytes:
    """1024 gzip members of 1 MiB of zeros each, after one holding the headers."""
    headers = gzip.compress(RECIPE_MEMBER + tar_header("zeros.img", 500 * MiB))
    return headers + gzip.compress(ZEROS, 9) * 1024


def empty_members_bomb(count: int = 100_000) -> bytes:
    """A small valid archive followed by ``count`` empty gzip members (20 bytes each)."""
    return gzip.compress(RECIPE_MEMBER + END_OF_ARCHIVE) + gzip.compress(b"") * count


def huge_pax_header() -> bytes:
    """A pax header declaring 1 GiB of data, which tarfile would read into memory."""
    pax = tar_header("././@PaxHeader", 1024 * MiB, tarfile.XHDTYPE)
    return gzip_repeating(RECIPE_MEMBER + pax, ZEROS, 1024)


def pax_header_chain() -> bytes:
    """A member preceded by 10,000 pax headers, which tarfile reads recursively."""
    record = b"13 comment=x\n"  # a pax record: its own length, keyword=value, newline
    pax = tar_header("././@PaxHeader", len(record), tarfile.XHDTYPE) + record.ljust(BLOCK, b"\0")
    return gzip.compress(RECIPE_MEMBER + pax * 10_000 + tar_file("f", b"") + END_OF_ARCHIVE)
