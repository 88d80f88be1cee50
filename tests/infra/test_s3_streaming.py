"""The local stack's S3 streams bodies to and from files: a 512 MiB upload does not grow moto's
memory by more than 128 MiB and its download is streamed; aws-chunked uploads with trailing
checksums; Kiln's artifact store over it; multipart answers as plain moto's."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import time
import zlib
from pathlib import Path

import pytest
import requests

from tests.infra.moto_with_data import MiB, Moto, blob_names, multipart, read, start_moto


def test_a_large_upload_is_streamed_to_disk_and_back(
    data_dir: Path, started: list[Moto], capsys: pytest.CaptureFixture[str]
) -> None:
    moto = start_moto(data_dir, started)
    moto.s3.create_bucket(Bucket="kiln")
    multipart(moto.s3, "warm", [os.urandom(5 * MiB), b"x"])  # moto's code paths loaded
    read(moto.s3, "warm")
    block = os.urandom(8 * MiB)
    parts = [bytes([number]) + block[1:] for number in range(64)]  # 512 MiB
    expected = hashlib.sha256()
    for part in parts:
        expected.update(part)
    before = moto.memory("VmRSS")
    started_at = time.perf_counter()
    multipart(moto.s3, "big", parts)
    up = time.perf_counter() - started_at
    grown = moto.memory("VmHWM") - before
    started_at = time.perf_counter()
    response = moto.s3.get_object(Bucket="kiln", Key="big")
    got, size = hashlib.sha256(), 0
    for chunk in response["Body"].iter_chunks(MiB):
        got.update(chunk)
        size += len(chunk)
    down = time.perf_counter() - started_at
    grown = max(grown, moto.memory("VmHWM") - before)
    with capsys.disabled():
        print(
            f"\n512 MiB: up {512 / up:.0f} MiB/s, down {512 / down:.0f} MiB/s, "
            f"moto's memory grew {grown / MiB:.1f} MiB"
        )
    assert size == 512 * MiB and got.digest() == expected.digest()
    assert grown < 128 * MiB


def test_an_aws_chunked_upload_with_a_trailing_checksum(
    data_dir: Path, started: list[Moto]
) -> None:
    """As the SDKs send over https: the body in aws-chunked framing, its CRC32 in a trailer."""
    moto = start_moto(data_dir, started)
    moto.s3.create_bucket(Bucket="kiln")
    body = random.Random(3).randbytes(2 * MiB + 3)
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    framed = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + MiB]), body[i : i + MiB])
        for i in range(0, len(body), MiB)
    )
    framed += f"0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n".encode()
    url = moto.s3.generate_presigned_url("put_object", Params={"Bucket": "kiln", "Key": "chunked"})
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-decoded-content-length": str(len(body)),
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-sdk-checksum-algorithm": "CRC32",
    }
    answer = requests.put(url, data=framed, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    stored = moto.s3.get_object(Bucket="kiln", Key="chunked", ChecksumMode="ENABLED")
    assert stored["Body"].read() == body
    assert stored.get("ChecksumCRC32") == crc


def test_kilns_artifact_store_over_files(data_dir: Path, started: list[Moto]) -> None:
    """chalicelib's ArtifactStore as the app uses it: streamed multipart puts, ranged and
    offset reads, presigned parts, copies, soft-delete tags, listing and deletes."""
    from chalicelib.adapters.artifacts import ArtifactStore

    moto = start_moto(data_dir, started)
    moto.s3.create_bucket(Bucket="kiln")
    store = ArtifactStore(moto.s3, "kiln", 3600)
    data = random.Random(5).randbytes(20 * MiB + 11)
    chunks = (data[i : i + 300_000] for i in range(0, len(data), 300_000))
    assert store.put_stream("glance/i/data", chunks) == len(data)
    assert store.put_stream("glance/e/data", iter([])) == 0
    assert store.read("glance/e/data") == b""
    assert store.sha256("glance/i/data") == hashlib.sha256(data).hexdigest()
    assert (
        b"".join(store.stream_range("glance/i/data", 8 * MiB - 3, 8 * MiB + 2))
        == (data[8 * MiB - 3 : 8 * MiB + 3])
    )
    assert store.read_from("glance/i/data", 17 * MiB) == data[17 * MiB :]
    upload = store.start_upload("glance/d/direct")
    etags = []
    for number, start in enumerate(range(0, len(data), 6 * MiB), start=1):
        url = store.presign_part("glance/d/direct", upload, number)
        answer = requests.put(url, data=data[start : start + 6 * MiB], timeout=30)
        etags.append({"PartNumber": number, "ETag": answer.headers["ETag"]})
    store.complete_upload("glance/d/direct", upload, etags)
    store.copy("glance/d/direct", "glance/c/data")
    assert store.read("glance/c/data") == data
    store.tag_deleted("glance/c/data", "2026-12-03")
    assert store.tags("glance/c/data") == {"kiln-deleted": "2026-12-03"}
    store.untag("glance/c/data")
    assert store.tags("glance/c/data") == {}
    keys = [key for key, _ in store.sizes("glance/")]
    assert dict(store.sizes("glance/")) == {
        "glance/c/data": len(data),
        "glance/d/direct": len(data),
        "glance/e/data": 0,
        "glance/i/data": len(data),
    }
    assert sorted(store.delete_under("glance/")) == keys
    assert store.sizes("glance/") == [] and blob_names(data_dir) == set()


def test_multipart_answers_as_plain_moto(data_dir: Path, started: list[Moto]) -> None:
    """ETags, checksums and sizes of completed uploads as plain moto's (no data dir)."""
    from tests.infra.test_moto_process import _multipart as complete
    from tests.infra.test_moto_process import _server

    moto = start_moto(data_dir, started)
    plain, dynamodb = _server("moto.server")
    try:
        answers = []
        for s3 in (moto.s3, moto.client("s3", dynamodb.meta.endpoint_url)):
            s3.create_bucket(Bucket="parts")
            answers.append(
                (
                    complete(s3, "plain"),
                    complete(s3, "crc32", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"),
                    complete(s3, "sha", ChecksumAlgorithm="SHA256", ChecksumType="COMPOSITE"),
                )
            )
        assert answers[0] == answers[1]
    finally:
        plain.terminate()
        plain.wait(timeout=10)
