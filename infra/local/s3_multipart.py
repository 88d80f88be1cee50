"""What both of the local stack's multipart completions check first (moto_process.py's, in
memory; s3_files.py's, over files): the parts named exist with those ETags, every part but
the last is at least 5 MiB, and there is one; moto's rules and errors, as S3's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
from moto.s3.models import S3_UPLOAD_PART_MIN_SIZE, MultipartChecksumBuilder
from moto.utilities.utils import md5_hash


def checked_parts(upload: Any, parts: Iterator[tuple[int, str]]) -> tuple[list[Any], str]:
    """The upload's parts, in the order named; and the object's ETag (the MD5 of the parts'
    MD5s, then "-N"). Raises InvalidPart, EntityTooSmall or MalformedXML as moto does."""
    chosen: list[Any] = []
    md5s, last = bytearray(), None
    for number, etag in parts:
        part = upload.parts.get(number)
        if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
            raise InvalidPart()
        if last is not None and last.contentsize < S3_UPLOAD_PART_MIN_SIZE:
            raise EntityTooSmall()
        md5s.extend(bytes.fromhex(part.etag.replace('"', "")))
        chosen.append(part)
        last = part
    if not chosen:
        raise MalformedXML()
    return chosen, f"{md5_hash(bytes(md5s)).hexdigest()}-{len(chosen)}"


def checksum_builder(upload: Any) -> MultipartChecksumBuilder:
    """moto's builder of the whole object's checksum, as the upload asked for it."""
    return MultipartChecksumBuilder(
        upload.metadata.get("x-amz-checksum-algorithm"),
        upload.metadata.get("x-amz-checksum-type"),
    )
