"""Decompression bombs in recipe archives are refused before they are unpacked, through both
ways an archive reaches Kiln: POST /v3/recipes with a link to an uploaded archive (422), and
the upload event for an archive put at its recipe's key (archive status 'invalid').

The bombs are built without holding or compressing their whole payload: one mebibyte of zeros
is compressed once, after a full flush, and that block repeated (see gzip_with_zeros).
How fast they are refused is measured by bench/archive_bombs.py, not asserted here.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import struct
import tarfile
import zlib
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from tests.conftest import Kiln
from tests.ims.helpers import NOOP_RECIPE, V3, put_object

MiB = 1024 * 1024
BLOCK = tarfile.BLOCKSIZE
END_OF_ARCHIVE = bytes(2 * BLOCK)


def gzip_with_zeros(head: bytes, zero_mib: int, tail: bytes = b"") -> bytes:
    """One valid gzip member of ``head``, ``zero_mib`` MiB of zeros, then ``tail``.

    After a full flush a deflate block refers to nothing before it, so the block for one MiB of
    zeros, compressed once, stands for each of them; only the CRC runs over every MiB."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    start = deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH)
    zeros = bytes(MiB)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.compress(tail) + deflate.flush()
    crc = zlib.crc32(head)
    for _ in range(zero_mib):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(tail, crc)
    size = len(head) + zero_mib * MiB + len(tail)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # deflate, no name, no mtime, unix
    return header + start + block * zero_mib + end + struct.pack("<II", crc, size % 2**32)


def tar_header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def tar_file(name: str, data: bytes) -> bytes:
    """A member header and its data padded to whole blocks."""
    padding = -len(data) % BLOCK
    return tar_header(name, len(data)) + data + bytes(padding)


RECIPE_MEMBER = tar_file("recipe.yaml", b"name: bomb\n")


def zeros_bomb(mib: int) -> bytes:
    """A tar whose second member is ``mib`` MiB of zeros, declared honestly in its header."""
    return gzip_with_zeros(RECIPE_MEMBER + tar_header("zeros.img", mib * MiB), mib, END_OF_ARCHIVE)


def lying_bomb() -> bytes:
    """Headers declaring a few bytes, then 1 GiB of zeros: to tar, end-of-archive padding."""
    return gzip_with_zeros(RECIPE_MEMBER + tar_file("notes.txt", b"ten bytes\n"), 1024)


def concatenated_bomb() -> bytes:
    """1024 gzip members of 1 MiB of zeros each, after one holding the headers."""
    headers = gzip.compress(RECIPE_MEMBER + tar_header("zeros.img", 500 * MiB))
    return headers + gzip.compress(bytes(MiB), 9) * 1024


def empty_members_bomb() -> bytes:
    """A small valid archive followed by 100,000 empty gzip members (2 MB of work for zlib)."""
    return gzip.compress(RECIPE_MEMBER + END_OF_ARCHIVE) + gzip.compress(b"") * 100_000


def huge_pax_header() -> bytes:
    """A pax header declaring 1 GiB of data, which tarfile would read into memory."""
    pax = tar_header("././@PaxHeader", 1024 * MiB, tarfile.XHDTYPE)
    return gzip_with_zeros(RECIPE_MEMBER + pax, 1024)


def pax_header_chain() -> bytes:
    """A member preceded by 10,000 pax headers, which tarfile reads recursively."""
    record = b"13 comment=x\n"  # a pax record: its own length, keyword=value, newline
    pax = tar_header("././@PaxHeader", len(record), tarfile.XHDTYPE) + record.ljust(BLOCK, b"\0")
    body = RECIPE_MEMBER + pax * 10_000 + tar_file("f", b"") + END_OF_ARCHIVE
    return gzip.compress(body)


BOMBS: dict[str, tuple[Callable[[], bytes], str]] = {
    "zeros-1GiB-over-the-cap": (lambda: zeros_bomb(1024), "unpacks to more than"),
    "zeros-500MiB-under-the-cap": (lambda: zeros_bomb(500), "expands more than 100 times"),
    "lying-headers": (lying_bomb, "expands more than 100 times"),
    "concatenated-gzip-members": (concatenated_bomb, "expands more than 100 times"),
    "empty-gzip-members": (empty_members_bomb, "more than 16384 gzip members"),
    "huge-pax-header": (huge_pax_header, "unpacks to more than"),
    "pax-header-chain": (pax_header_chain, "more than 8 pax or GNU extended headers"),
}


@functools.cache
def bomb(kind: str) -> bytes:
    return BOMBS[kind][0]()


def tar_gz(files: dict[str, bytes], tar_format: int = tarfile.PAX_FORMAT) -> bytes:
    return gzip.compress(plain_tar(files, tar_format))


def plain_tar(files: dict[str, bytes], tar_format: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


RECIPE_FILE = {"recipe.yaml": b"name: noop\n"}
#: 2 MiB of one repeated paragraph: compresses about 1000 times, past the ratio, but is small
REPETITIVE_TEXT = (b"Kiln builds images; this message of the day repeats itself.\n" * 40_000)[
    : 2 * MiB
]
LONG_DIRECTORY = "etc/" + "deeply/" * 30


def two_gzip_members() -> bytes:
    """One tar split over two gzip members, as `cat a.gz b.gz` makes."""
    raw = plain_tar({**RECIPE_FILE, "scripts/setup.sh": b"#!/bin/sh\necho hello\n" * 50})
    return gzip.compress(raw[: 3 * BLOCK]) + gzip.compress(raw[3 * BLOCK :])


LEGITIMATE: dict[str, Callable[[], bytes]] = {
    "repetitive-text-2MiB": lambda: tar_gz({**RECIPE_FILE, "motd.txt": REPETITIVE_TEXT}),
    "two-gzip-members": two_gzip_members,
    "zero-padded-gzip": lambda: tar_gz(RECIPE_FILE) + bytes(4096),
    "long-names-pax": lambda: tar_gz({**RECIPE_FILE, LONG_DIRECTORY + "a.conf": b"a = 1\n"}),
    "long-names-gnu": lambda: tar_gz(
        {**RECIPE_FILE, LONG_DIRECTORY + "a.conf": b"a = 1\n"}, tarfile.GNU_FORMAT
    ),
}


def post_with_link(kiln: Kiln, archive: bytes) -> Any:
    path = put_object(kiln, "uploads/demo/archive.tar.gz", archive)
    return kiln.call("POST", f"{V3}/recipes", {**NOOP_RECIPE, "link": {"path": path, "type": "s3"}})


def upload_event_for(kiln: Kiln, archive: bytes) -> dict[str, Any]:
    """Create a recipe, put its archive at its key, deliver the bucket's event; the recipe."""
    recipe_id = kiln.call("POST", f"{V3}/recipes", NOOP_RECIPE).json_body["id"]
    key = f"recipes/{recipe_id}/recipe.tar.gz"
    put_object(kiln, key, archive)
    s3 = boto3.client("s3", region_name="us-east-1")
    etag = s3.head_object(Bucket=kiln.provisioned.bucket, Key=key)["ETag"]
    record = {
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": kiln.provisioned.bucket}, "object": {"key": key, "eTag": etag}},
    }
    kiln.upload_events(json.dumps({"Records": [record]}))
    return dict(kiln.call("GET", f"{V3}/recipes/{recipe_id}").json_body)


@pytest.mark.parametrize("kind", BOMBS)
def test_bomb_linked_at_creation_is_422_and_nothing_is_written(kiln: Kiln, kind: str) -> None:
    response = post_with_link(kiln, bomb(kind))
    assert response.status_code == 422, response.body
    assert BOMBS[kind][1] in response.json_body["detail"]
    assert BOMBS[kind][1] in response.json_body["errors"]["link"][0]
    assert kiln.call("GET", f"{V3}/recipes").json_body == []


@pytest.mark.parametrize("kind", BOMBS)
def test_bomb_uploaded_marks_the_recipe_invalid_with_the_reason(kiln: Kiln, kind: str) -> None:
    recipe = upload_event_for(kiln, bomb(kind))
    assert recipe["archive"]["status"] == "invalid"
    assert BOMBS[kind][1] in recipe["archive"]["reason"]
    assert "link" not in recipe


def test_members_in_a_later_gzip_member_are_checked_too(kiln: Kiln) -> None:
    raw = plain_tar({**RECIPE_FILE, "../../etc/cron.d/x": b"* * * * * root sh\n"})
    archive = gzip.compress(raw[: 2 * BLOCK]) + gzip.compress(raw[2 * BLOCK :])
    response = post_with_link(kiln, archive)
    assert response.status_code == 422
    assert "climbs out" in response.json_body["detail"]
    recipe = upload_event_for(kiln, archive)
    assert recipe["archive"]["status"] == "invalid" and "climbs out" in recipe["archive"]["reason"]


def test_repetitive_text_compresses_past_the_ratio_yet_is_small() -> None:
    """The premise of the 'repetitive-text-2MiB' case below: only the floor lets it through."""
    archive = LEGITIMATE["repetitive-text-2MiB"]()
    assert len(archive) * 100 < len(REPETITIVE_TEXT) == 2 * MiB


@pytest.mark.parametrize("kind", LEGITIMATE)
def test_legitimate_archive_linked_at_creation_is_accepted(kiln: Kiln, kind: str) -> None:
    archive = LEGITIMATE[kind]()
    response = post_with_link(kiln, archive)
    assert response.status_code == 201, response.body
    facts = response.json_body["archive"]
    assert facts["status"] == "ready"
    assert facts["sha256"] == hashlib.sha256(archive).hexdigest()
    assert facts["size"] == len(archive)


@pytest.mark.parametrize("kind", LEGITIMATE)
def test_legitimate_archive_uploaded_makes_the_recipe_ready(kiln: Kiln, kind: str) -> None:
    archive = LEGITIMATE[kind]()
    recipe = upload_event_for(kiln, archive)
    assert recipe["archive"]["status"] == "ready", recipe["archive"]
    assert recipe["archive"]["sha256"] == hashlib.sha256(archive).hexdigest()
    assert recipe["archive"]["size"] == len(archive)
