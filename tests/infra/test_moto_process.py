"""The local stack's moto server (infra/local/moto_process.py) answers every DynamoDB Query as
plain moto server does: the same items, order, pages and LastEvaluatedKey, before and after
writes, for the queries it serves from partitions and for those it leaves to moto; and it
stores a presigned PUT's body as sent, whatever Content-Type the client gives it."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from tests.conftest import ROOT, free_port


def _server(module: str) -> tuple[subprocess.Popen[bytes], Any]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", module, "-H", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/moto-api/data.json", timeout=2)
            break
        except requests.ConnectionError:
            assert process.poll() is None and time.time() < deadline, f"{module} did not start"
            time.sleep(0.1)
    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    return process, client


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Any, Any]]:
    fast, fast_client = _server("infra.local.moto_process")
    plain, plain_client = _server("moto.server")
    try:
        yield fast_client, plain_client
    finally:
        for process in (fast, plain):
            process.terminate()
            process.wait(timeout=10)


def _setup(client: Any) -> None:
    client.create_table(
        TableName="t",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": kind}
            for name, kind in (("id", "S"), ("owner", "S"), ("created", "S"), ("n", "N"))
        ],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_owner",
                "KeySchema": [
                    {"AttributeName": "owner", "KeyType": "HASH"},
                    {"AttributeName": "created", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "by_number",  # a numeric range key: left to moto
                "KeySchema": [
                    {"AttributeName": "owner", "KeyType": "HASH"},
                    {"AttributeName": "n", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    )
    for i in range(60):
        item = {"id": {"S": f"id-{i:03}"}, "owner": {"S": f"o{i % 3}"}, "n": {"N": str(i % 7)}}
        if i % 10 != 9:  # some items are not in the index
            item["created"] = {"S": f"2026-01-01T00:{i:02}:00#{i}"}
        client.put_item(TableName="t", Item=item)


def _pages(client: Any, **query: Any) -> list[tuple[list[Any], Any, int]]:
    pages, start = [], None
    while True:
        extra = {"ExclusiveStartKey": start} if start else {}
        answer = client.query(TableName="t", **query, **extra)
        pages.append((answer["Items"], answer.get("LastEvaluatedKey"), answer["Count"]))
        start = answer.get("LastEvaluatedKey")
        if not start or len(pages) > 50:
            return pages


QUERIES: list[dict[str, Any]] = [
    {"IndexName": "by_owner", "KeyConditionExpression": "#o = :o", "Limit": 4},
    {"IndexName": "by_owner", "KeyConditionExpression": "#o = :o", "ScanIndexForward": False,
     "Limit": 3},
    {"IndexName": "by_owner", "KeyConditionExpression": "#o = :o AND #c < :c", "Limit": 2,
     "ScanIndexForward": False},
    {"IndexName": "by_owner", "KeyConditionExpression": "#o = :o AND #c >= :c", "Limit": 5},
    {"IndexName": "by_owner", "KeyConditionExpression": "#o = :o AND #c <= :c"},
    {"IndexName": "by_owner", "KeyConditionExpression": "#o = :o AND #c > :c",
     "ScanIndexForward": False},
    {"IndexName": "by_owner", "KeyConditionExpression": "#o = :o AND begins_with(#c, :p)"},
    {"IndexName": "by_number", "KeyConditionExpression": "#o = :o", "Limit": 3},
]  # fmt: skip


def _names_values(query: dict[str, Any], owner: str) -> dict[str, Any]:
    expression = query["KeyConditionExpression"]
    names = {"#o": "owner", **({"#c": "created"} if "#c" in expression else {})}
    values: dict[str, Any] = {":o": {"S": owner}}
    if ":c" in expression:
        values[":c"] = {"S": "2026-01-01T00:31:00#31"}
    if ":p" in expression:
        values[":p"] = {"S": "2026-01-01T00:2"}
    return {"ExpressionAttributeNames": names, "ExpressionAttributeValues": values}


def test_queries_answer_as_plain_moto_does(servers: tuple[Any, Any]) -> None:
    fast, plain = servers
    for client in servers:
        _setup(client)
    for round_ in range(2):
        for query in QUERIES:
            for owner in ("o0", "o1", "o2", "nobody"):
                asked = {**query, **_names_values(query, owner)}
                assert _pages(fast, **asked) == _pages(plain, **asked), (round_, asked)
        for client in servers:  # writes between rounds: moved, new and deleted items
            client.delete_item(TableName="t", Key={"id": {"S": "id-004"}})
            client.update_item(
                TableName="t",
                Key={"id": {"S": "id-005"}},
                UpdateExpression="SET #o = :o",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":o": {"S": "o0"}},
            )
            client.put_item(
                TableName="t",
                Item={"id": {"S": "id-new"}, "owner": {"S": "o1"}, "n": {"N": "1"},
                      "created": {"S": "2026-01-01T00:30:30#new"}},
            )  # fmt: skip
    assert _pages(fast, **QUERIES[0], **_names_values(QUERIES[0], "o0"))[0][0]  # not empty
    for key in ({"id": {"S": "id-001"}}, {"id": {"S": "nope"}}):
        assert fast.get_item(TableName="t", Key=key).get("Item") == plain.get_item(
            TableName="t", Key=key
        ).get("Item")
    keys = {"t": {"Keys": [{"id": {"S": f"id-{i:03}"}} for i in range(0, 40, 3)]}}
    batch = [
        sorted(c.batch_get_item(RequestItems=keys)["Responses"]["t"], key=str) for c in servers
    ]
    assert batch[0] == batch[1] and len(batch[0]) > 5


def _multipart(s3: Any, key: str, **checksum: str) -> tuple[Any, ...]:
    upload = s3.create_multipart_upload(Bucket="parts", Key=key, **checksum)["UploadId"]
    parts = []
    for number, body in ((1, b"a" * (5 * 1024 * 1024)), (2, b"tail bytes")):
        extra = {"ChecksumAlgorithm": checksum["ChecksumAlgorithm"]} if checksum else {}
        answer = s3.upload_part(
            Bucket="parts", Key=key, UploadId=upload, PartNumber=number, Body=body, **extra
        )
        parts.append(
            {"PartNumber": number, "ETag": answer["ETag"]}
            | {k: v for k, v in answer.items() if k.startswith("ChecksumCRC")}
        )
    done = s3.complete_multipart_upload(
        Bucket="parts", Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    attributes = s3.get_object_attributes(
        Bucket="parts", Key=key, ObjectAttributes=["Checksum", "ETag", "ObjectSize"]
    )
    return (
        done["ETag"],
        {k: v for k, v in done.items() if k.startswith("Checksum")},
        attributes.get("Checksum"),
        attributes["ObjectSize"],
    )


def test_multipart_uploads_complete_as_with_plain_moto(servers: tuple[Any, Any]) -> None:
    answers = []
    for dynamodb in servers:
        s3 = boto3.client(
            "s3",
            region_name="us-east-1",
            endpoint_url=dynamodb.meta.endpoint_url,
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        s3.create_bucket(Bucket="parts")
        upload = s3.create_multipart_upload(Bucket="parts", Key="bad")["UploadId"]
        small = s3.upload_part(Bucket="parts", Key="bad", UploadId=upload, PartNumber=1, Body=b"x")
        refusals = []
        for parts in (
            [{"PartNumber": 1, "ETag": '"0123456789abcdef0123456789abcdef"'}],
            [{"PartNumber": 1, "ETag": small["ETag"]}, {"PartNumber": 1, "ETag": small["ETag"]}],
            [],
        ):
            with pytest.raises(s3.exceptions.ClientError) as refused:
                s3.complete_multipart_upload(
                    Bucket="parts", Key="bad", UploadId=upload, MultipartUpload={"Parts": parts}
                )
            refusals.append(refused.value.response["Error"]["Code"])
        answers.append(
            (
                refusals,
                _multipart(s3, "plain"),
                _multipart(s3, "crc32", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"),
            )
        )
    assert answers[0] == answers[1]
    assert answers[0][2][2].get("ChecksumCRC32"), answers[0]  # a whole-object CRC compared
    assert answers[0][0] == ["InvalidPart", "EntityTooSmall", "MalformedXML"]


def _s3(client: Any) -> Any:
    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=client.meta.endpoint_url,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


@pytest.fixture(scope="module")
def uploads(servers: tuple[Any, Any]) -> Any:
    s3 = _s3(servers[0])
    s3.create_bucket(Bucket="uploads")
    return s3


#: what clients send with a presigned PUT; None: no Content-Type of our own (urllib then sends
#: application/x-www-form-urlencoded, requests sends none)
CONTENT_TYPES = [
    None,
    "application/x-www-form-urlencoded",
    "application/gzip",
    "application/octet-stream",
    "text/plain",
    "multipart/form-data; boundary=kiln",
    "multipart/mixed; boundary=kiln",
]
PUT_TIMEOUT = 20  # a body moto waits for again fails the test instead of hanging it


def _urllib_put(url: str, body: bytes, content_type: str | None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method="PUT")
    if content_type is not None:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=PUT_TIMEOUT) as response:
        response.read()
        return response.status, str(response.headers["ETag"])


def _requests_put(url: str, body: bytes, content_type: str | None) -> tuple[int, str]:
    headers = {"Content-Type": content_type} if content_type is not None else {}
    response = requests.put(url, data=body, headers=headers, timeout=PUT_TIMEOUT)
    return response.status_code, str(response.headers.get("ETag"))


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize("put", [_urllib_put, _requests_put], ids=["urllib", "requests"])
def test_presigned_put_stores_the_body_whatever_its_content_type(
    uploads: Any, put: Any, content_type: str | None
) -> None:
    key = f"recipes/{put.__name__}/{content_type}"
    body = random.Random(key).randbytes(3 * 1024 * 1024 + 17)  # binary: not UTF-8, not a form
    url = uploads.generate_presigned_url("put_object", Params={"Bucket": "uploads", "Key": key})
    status, etag = put(url, body, content_type)
    md5 = f'"{hashlib.md5(body).hexdigest()}"'
    assert (status, etag) == (200, md5)
    stored = uploads.get_object(Bucket="uploads", Key=key)
    assert stored["Body"].read() == body
    assert stored["ETag"] == md5
    if content_type is not None:
        assert stored["ContentType"] == content_type


def test_presigned_upload_part_with_urllibs_default_content_type(uploads: Any) -> None:
    key = "direct/upload"
    body = random.Random(key).randbytes(2 * 1024 * 1024)
    upload = uploads.create_multipart_upload(Bucket="uploads", Key=key)["UploadId"]
    url = uploads.generate_presigned_url(
        "upload_part",
        Params={"Bucket": "uploads", "Key": key, "UploadId": upload, "PartNumber": 1},
    )
    status, etag = _urllib_put(url, body, None)  # sent as application/x-www-form-urlencoded
    assert (status, etag) == (200, f'"{hashlib.md5(body).hexdigest()}"')
    uploads.complete_multipart_upload(
        Bucket="uploads",
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert uploads.get_object(Bucket="uploads", Key=key)["Body"].read() == body


def test_s3_events_carry_an_increasing_sequencer(servers: tuple[Any, Any]) -> None:
    """As S3's do (plain moto's have none): the upload handler orders events by it."""
    s3 = _s3(servers[0])
    sqs = boto3.client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=servers[0].meta.endpoint_url,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    queue = sqs.create_queue(QueueName="events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    s3.create_bucket(Bucket="notified")
    s3.put_bucket_notification_configuration(
        Bucket="notified",
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn["QueueArn"], "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    for body in (b"one", b"two", b"three"):
        s3.put_object(Bucket="notified", Key="k", Body=body)
    found: list[tuple[str, str]] = []
    while len(found) < 3:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in messages.get("Messages", []):
            record = json.loads(message["Body"]).get("Records", [{}])[0]
            if "s3" in record:
                found.append((record["s3"]["object"]["eTag"], record["s3"]["object"]["sequencer"]))
    etags = [hashlib.md5(body).hexdigest() for body in (b"one", b"two", b"three")]
    assert [etag for etag, _ in sorted(found, key=lambda pair: pair[1])] == etags
    assert len({sequencer for _, sequencer in found}) == 3


def test_dynamodb_refuses_what_dynamodb_refuses(servers: tuple[Any, Any]) -> None:
    """A key over 2,048 bytes and an item over 400 KB are ValidationExceptions, as on AWS."""
    client = servers[0]
    client.create_table(
        TableName="limits",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    calls = [
        lambda: client.get_item(TableName="limits", Key={"id": {"S": "k" * 2049}}),
        lambda: client.delete_item(TableName="limits", Key={"id": {"S": "k" * 2049}}),
        lambda: client.put_item(
            TableName="limits", Item={"id": {"S": "a"}, "v": {"S": "v" * 410_000}}
        ),
    ]
    for call in calls:
        with pytest.raises(client.exceptions.ClientError) as refused:
            call()
        assert refused.value.response["Error"]["Code"] == "ValidationException"
    client.put_item(TableName="limits", Item={"id": {"S": "k" * 2048}, "v": {"S": "v" * 1000}})
    assert client.get_item(TableName="limits", Key={"id": {"S": "k" * 2048}})["Item"]
