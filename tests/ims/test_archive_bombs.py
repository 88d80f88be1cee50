"""Decompression bombs in recipe archives are refused before they are unpacked, through both
ways an archive reaches Kiln: POST /v3/recipes with a link to an uploaded archive (422), and
the upload event for an archive put at its recipe's key (archive status 'invalid').

The bombs are built without holding or compressing their whole payload: one mebibyte of zeros
is compressed once, after a full flush, and that block repeated (tests/ims/archive_bombs.py).
How fast they are refused is measured by bench/archive_bombs.py, not asserted here.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from tests.conftest import Kiln
from tests.ims.archive_bombs import (
    BLOCK,
    MiB,
    concatenated_bomb,
    empty_members_bomb,
    huge_pax_header,
    lying_bomb,
    pax_header_chain,
    zeros_bomb,
)
from tests.ims.helpers import NOOP_RECIPE, V3, put_object

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
