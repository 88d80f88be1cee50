"""The local stack's S3 with a data dir (infra/local/s3_files.py, s3_state.py, s3_blobs.py):
objects of every size, presigned, multipart, ranged, copied and tagged read back as written;
all of it survives a restart and a ``kill -9`` (a half-sent part is not kept, a completed
object is whole)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import random
import time
import urllib.parse
import zlib
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.infra.moto_with_data import MiB, Moto, blob_names, multipart, read, start_moto


def _notify(moto: Moto) -> dict[str, Any]:
    """The bucket's event notifications to a queue, as the stack's provisioning sets them."""
    sqs = moto.client("sqs")
    queue = sqs.create_queue(QueueName="uploads")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    configuration = {
        "QueueConfigurations": [{"QueueArn": arn["QueueArn"], "Events": ["s3:ObjectCreated:*"]}]
    }
    moto.s3.put_bucket_notification_configuration(
        Bucket="kiln", NotificationConfiguration=configuration
    )
    return _notifications(moto)


def _events(moto: Moto) -> dict[str, tuple[str, str]]:
    """Key -> (eTag, sequencer) of the last ObjectCreated event of each key in the queue."""
    sqs = moto.client("sqs")
    queue = sqs.get_queue_url(QueueName="uploads")["QueueUrl"]
    found: dict[str, tuple[str, str]] = {}
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            for record in json.loads(message["Body"]).get("Records", []):
                s3 = record["s3"]["object"]
                found[s3["key"]] = (s3["eTag"], s3["sequencer"])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return found


def _notifications(moto: Moto) -> dict[str, Any]:
    answer = moto.s3.get_bucket_notification_configuration(Bucket="kiln")
    return {key: value for key, value in answer.items() if key != "ResponseMetadata"}


def _write_everything(s3: Any, rng: random.Random) -> dict[str, bytes]:
    objects = {"small": b"small body", "large": rng.randbytes(3 * MiB + 5)}
    for key, body in objects.items():
        s3.put_object(Bucket="kiln", Key=key, Body=body)
    objects["presigned"] = rng.randbytes(2 * MiB + 7)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": "kiln", "Key": "presigned"})
    assert requests.put(url, data=objects["presigned"], timeout=30).status_code == 200
    parts = [rng.randbytes(8 * MiB) for _ in range(3)]
    done = multipart(s3, "multi", parts)
    objects["multi"] = b"".join(parts)
    md5s = b"".join(hashlib.md5(part).digest() for part in parts)
    assert done["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-3"'
    crc_parts = [rng.randbytes(5 * MiB), b"tail"]
    multipart(s3, "crc", crc_parts, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    objects["crc"] = b"".join(crc_parts)
    s3.copy({"Bucket": "kiln", "Key": "multi"}, "kiln", "multi-copy")  # UploadPartCopy
    objects["multi-copy"] = objects["multi"]
    s3.copy_object(Bucket="kiln", Key="large-copy", CopySource={"Bucket": "kiln", "Key": "large"})
    objects["large-copy"] = objects["large"]
    s3.put_object_tagging(
        Bucket="kiln", Key="multi", Tagging={"TagSet": [{"Key": "kiln-deleted", "Value": "now"}]}
    )
    s3.put_object(Bucket="kiln", Key="gone", Body=rng.randbytes(2 * MiB))
    s3.delete_object(Bucket="kiln", Key="gone")
    return objects


def _check_everything(moto: Moto, objects: dict[str, bytes]) -> None:
    s3 = moto.s3
    for key, body in objects.items():
        assert read(s3, key) == body, key
        assert s3.head_object(Bucket="kiln", Key=key)["ContentLength"] == len(body)
    for key in ("small", "large", "presigned"):
        etag = s3.head_object(Bucket="kiln", Key=key)["ETag"]
        assert etag == f'"{hashlib.md5(objects[key]).hexdigest()}"'
    multi = objects["multi"]
    for first, last in ((0, 99), (8 * MiB - 10, 8 * MiB + 10), (20 * MiB, len(multi) - 1)):
        assert read(s3, "multi", Range=f"bytes={first}-{last}") == multi[first : last + 1]
    assert read(s3, "multi", Range="bytes=-100") == multi[-100:]
    assert read(s3, "multi", Range=f"bytes={16 * MiB}-") == multi[16 * MiB :]
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "kiln", "Key": "multi"})
    assert hashlib.sha256(requests.get(url, timeout=60).content).digest() == (
        hashlib.sha256(multi).digest()
    )
    crc = base64.b64encode(zlib.crc32(objects["crc"]).to_bytes(4, "big")).decode()
    attributes = s3.get_object_attributes(Bucket="kiln", Key="crc", ObjectAttributes=["Checksum"])
    assert attributes["Checksum"]["ChecksumCRC32"] == crc
    tags = s3.get_object_tagging(Bucket="kiln", Key="multi")["TagSet"]
    assert tags == [{"Key": "kiln-deleted", "Value": "now"}]
    listed = s3.list_objects_v2(Bucket="kiln")["Contents"]
    assert {item["Key"]: item["Size"] for item in listed} == {
        key: len(body) for key, body in objects.items()
    }
    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket="kiln", Key="gone")


def test_objects_read_back_as_written_and_after_a_restart(
    data_dir: Path, started: list[Moto]
) -> None:
    moto = start_moto(data_dir, started)
    moto.s3.create_bucket(Bucket="kiln")
    notifications = _notify(moto)
    objects = _write_everything(moto.s3, random.Random(18))
    _check_everything(moto, objects)
    events = _events(moto)
    assert events["presigned"][0] == hashlib.md5(objects["presigned"]).hexdigest()
    assert events["multi"][0].endswith("-3") and len({s for _, s in events.values()}) == len(events)
    tags = {"TagSet": [{"Key": "a", "Value": "b"}]}
    moto.s3.put_object_tagging(Bucket="kiln", Key="large", Tagging=tags)
    moto.s3.delete_object_tagging(Bucket="kiln", Key="large")
    moto.stop()
    moto = start_moto(data_dir, started)
    _check_everything(moto, objects)
    assert _notifications(moto) == notifications and notifications["QueueConfigurations"]
    assert moto.s3.get_object_tagging(Bucket="kiln", Key="large")["TagSet"] == []
    blobs = blob_names(data_dir)
    moto.s3.delete_object(Bucket="kiln", Key="multi-copy")
    moto.s3.delete_object(Bucket="kiln", Key="large-copy")
    moto.s3.delete_object(Bucket="kiln", Key="large")  # large-copy's blob goes with it
    assert len(blob_names(data_dir)) < len(blobs)  # no longer referenced: deleted
    del objects["multi-copy"], objects["large-copy"], objects["large"]
    assert read(moto.s3, "multi") == objects["multi"]
    moto.stop()
    moto = start_moto(data_dir, started)
    for key, body in objects.items():
        assert read(moto.s3, key) == body


def _send_half_a_part(moto: Moto, upload: str, body: bytes) -> http.client.HTTPConnection:
    url = moto.s3.generate_presigned_url(
        "upload_part",
        Params={"Bucket": "kiln", "Key": "cut", "UploadId": upload, "PartNumber": 2},
    )
    parsed = urllib.parse.urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    connection.putrequest("PUT", f"{parsed.path}?{parsed.query}")
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders()
    connection.send(body[: len(body) // 2])
    return connection


def test_a_kill_keeps_what_was_acknowledged_and_nothing_half_written(
    data_dir: Path, started: list[Moto]
) -> None:
    rng = random.Random(9)
    moto = start_moto(data_dir, started)
    moto.s3.create_bucket(Bucket="kiln")
    whole = [rng.randbytes(5 * MiB), rng.randbytes(MiB)]
    multipart(moto.s3, "whole", whole)
    upload = moto.s3.create_multipart_upload(Bucket="kiln", Key="cut")["UploadId"]
    first = rng.randbytes(6 * MiB)
    etag = moto.s3.upload_part(Bucket="kiln", Key="cut", UploadId=upload, PartNumber=1, Body=first)
    etag = etag["ETag"]
    second = rng.randbytes(16 * MiB)
    connection = _send_half_a_part(moto, upload, second)
    time.sleep(0.5)  # the half is on moto's disk
    assert len(blob_names(data_dir)) == 4  # whole's two parts, cut's first, the half
    moto.stop(kill=True)
    connection.close()
    moto = start_moto(data_dir, started)
    assert read(moto.s3, "whole") == b"".join(whole)
    with pytest.raises(moto.s3.exceptions.ClientError):
        moto.s3.head_object(Bucket="kiln", Key="cut")
    assert len(blob_names(data_dir)) == 3  # the half-written part is gone
    parts = moto.s3.list_parts(Bucket="kiln", Key="cut", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == [(1, etag, len(first))]
    again = moto.s3.upload_part(
        Bucket="kiln", Key="cut", UploadId=upload, PartNumber=2, Body=second
    )["ETag"]
    moto.s3.complete_multipart_upload(
        Bucket="kiln",
        Key="cut",
        UploadId=upload,
        MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": e} for n, e in ((1, etag), (2, again))]
        },
    )
    assert read(moto.s3, "cut") == first + second
