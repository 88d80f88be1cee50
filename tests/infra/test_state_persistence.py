"""The local stack's moto keeps its DynamoDB, SQS and KMS state in its data directory
(infra/local/state_persistence.py): started again on the same directory after a clean stop
(SIGTERM) or a ``kill -9``, it answers as before: the same items (GSI queries and versioned
saves too), the same queues with their messages visible, in flight, delayed or dead-lettered,
the same signing key; and provision() run again changes nothing. moto's reset forgets it."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from pynamodb.exceptions import PutError

from chalicelib.adapters.cachito_models import CachitoRequestModel
from infra import resources
from infra.local.provision import provision
from tests.conftest import use_test_aws_env
from tests.infra.moto_with_data import Moto

REGION = "us-east-1"
BUCKET = "kiln-artifacts"
#: how long the in-flight and delayed messages stay hidden: more than a restart takes
HIDDEN_SECONDS = 8


@pytest.fixture
def moto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Moto]:
    use_test_aws_env(monkeypatch)
    server = Moto(tmp_path / "data", start=False)
    server.data_dir.mkdir()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.stop(kill=True)


def _provision() -> Any:
    return provision(REGION, "kiln", BUCKET, resources.Timing())


# -- DynamoDB ------------------------------------------------------------------------------------


def _extra_table(dynamodb: Any) -> None:
    """A table of other key types (string hash, number range) with binary, map, list, set
    values, written by every kind of request."""
    dynamodb.create_table(
        TableName="extra",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "n", "AttributeType": "N"},
            {"AttributeName": "owner", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "n", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_owner",
                "KeySchema": [
                    {"AttributeName": "owner", "KeyType": "HASH"},
                    {"AttributeName": "n", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    for i in range(6):
        dynamodb.put_item(
            TableName="extra",
            Item={
                "pk": {"S": f"p{i % 2}"},
                "n": {"N": str(i)},
                "owner": {"S": f"o{i % 3}"},
                "blob": {"B": bytes([i, 0, 255])},
                "doc": {"M": {"tags": {"SS": ["a", "b"]}, "raw": {"B": b"\x01\x02"}}},
                "list": {"L": [{"N": "1.50"}, {"S": "x"}, {"NULL": True}]},
            },
        )
    dynamodb.delete_item(TableName="extra", Key={"pk": {"S": "p0"}, "n": {"N": "0"}})
    dynamodb.update_item(
        TableName="extra",
        Key={"pk": {"S": "p1"}, "n": {"N": "1.0"}},  # the item written as n=1
        UpdateExpression="SET #c = if_not_exists(#c, :zero) + :one",
        ExpressionAttributeNames={"#c": "count"},
        ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}},
    )
    dynamodb.batch_write_item(
        RequestItems={
            "extra": [
                {"PutRequest": {"Item": {"pk": {"S": "b"}, "n": {"N": "7"}, "owner": {"S": "o1"}}}},
                {"DeleteRequest": {"Key": {"pk": {"S": "p1"}, "n": {"N": "3"}}}},
            ]
        }
    )
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": "extra", "Item": {"pk": {"S": "t"}, "n": {"N": "8"}}}},
            {"Delete": {"TableName": "extra", "Key": {"pk": {"S": "p0"}, "n": {"N": "2"}}}},
        ]
    )
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):  # rolled back whole
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "extra", "Item": {"pk": {"S": "never"}, "n": {"N": "9"}}}},
                {
                    "Delete": {
                        "TableName": "extra",
                        "Key": {"pk": {"S": "p0"}, "n": {"N": "4"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )


def _dynamodb_view(dynamodb: Any) -> dict[str, Any]:
    """Everything a reader sees: each table's definition, TTL and items, and GSI pages."""
    view: dict[str, Any] = {}
    for name in dynamodb.list_tables()["TableNames"]:
        table = dynamodb.describe_table(TableName=name)["Table"]
        table.pop("CreationDateTime")  # to the second after a restart
        items = dynamodb.scan(TableName=name)["Items"]
        view[name] = {
            "table": table,
            "ttl": dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"],
            "items": sorted(items, key=lambda item: json.dumps(item, sort_keys=True, default=str)),
        }
    for owner in ("o0", "o1", "o2"):
        view[f"by_owner {owner}"] = dynamodb.query(
            TableName="extra",
            IndexName="by_owner",
            KeyConditionExpression="#o = :o",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":o": {"S": owner}},
        )["Items"]
    return view


def _requests() -> None:
    """Cachito requests through PynamoDB: GSIs and a VersionAttribute."""
    for i in range(1, 5):
        CachitoRequestModel(
            id=i,
            tenant=f"tenant-{i % 2}",
            created=f"2026-01-0{i}T00:00:00.000000",
            updated=f"2026-01-0{i}T00:00:00.000000",
            repo="https://example.com/repo.git",
            ref="0" * 40,
            user="someone",
            live_state="in_progress",
        ).save()
    request = CachitoRequestModel.get(2)
    request.state = "complete"
    request.save()  # version 2, conditional on version 1


def _pynamodb_view() -> dict[str, Any]:
    return {
        "tenant-0": [r.id for r in CachitoRequestModel.by_tenant.query("tenant-0")],
        "kind": [r.id for r in CachitoRequestModel.by_kind.query("cachito-request")],
        "expiry": [r.id for r in CachitoRequestModel.by_expiry.query("in_progress")],
        "2": CachitoRequestModel.get(2).attribute_values,
    }


# -- SQS -----------------------------------------------------------------------------------------


def _queues(sqs: Any) -> dict[str, str]:
    dead = sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])
    urls = {"dlq": dead}
    for name, receives in (("work", 1), ("inflight", 5), ("delayed", 5)):
        policy = {
            "deadLetterTargetArn": dead_arn["Attributes"]["QueueArn"],
            "maxReceiveCount": receives,
        }
        urls[name] = sqs.create_queue(
            QueueName=name,
            Attributes={"VisibilityTimeout": "30", "RedrivePolicy": json.dumps(policy)},
        )["QueueUrl"]
    return urls


def _messages(sqs: Any, urls: dict[str, str]) -> dict[str, Any]:
    """A dead letter, a visible message, one in flight and one delayed; what was sent."""
    sqs.send_message(QueueUrl=urls["work"], MessageBody="poison")
    assert sqs.receive_message(QueueUrl=urls["work"], VisibilityTimeout=0)["Messages"]
    assert "Messages" not in sqs.receive_message(QueueUrl=urls["work"])  # moved to the DLQ
    visible = sqs.send_message(
        QueueUrl=urls["work"],
        MessageBody="visible",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "job"}},
    )
    sqs.send_message(QueueUrl=urls["inflight"], MessageBody="in flight")
    received = sqs.receive_message(QueueUrl=urls["inflight"], VisibilityTimeout=HIDDEN_SECONDS)
    sqs.send_message(QueueUrl=urls["delayed"], MessageBody="delayed", DelaySeconds=HIDDEN_SECONDS)
    return {"visible": visible["MessageId"], "in flight": received["Messages"][0]}


def _receive(sqs: Any, url: str, wait: int = 0) -> list[dict[str, Any]]:
    answer = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=wait,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return list(answer.get("Messages", []))


# -- KMS -----------------------------------------------------------------------------------------


def _sign(kms: Any, key: str, message: bytes) -> bytes:
    signed = kms.sign(
        KeyId=key,
        Message=hashlib.sha256(message).digest(),
        MessageType="DIGEST",
        SigningAlgorithm="ECDSA_SHA_256",
    )
    return bytes(signed["Signature"])


def _verifies(public_der: bytes, signature: bytes, message: bytes) -> bool:
    public = serialization.load_der_public_key(public_der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    digest = hashlib.sha256(message).digest()
    try:
        public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except Exception:
        return False
    return True


# -- the tests -----------------------------------------------------------------------------------


def test_everything_comes_back_after_a_clean_stop(moto: Moto) -> None:
    first = _provision()
    dynamodb, sqs, kms = moto.client("dynamodb"), moto.client("sqs"), moto.client("kms")
    _extra_table(dynamodb)
    _requests()
    urls = _queues(sqs)
    sent = _messages(sqs, urls)
    key = first.signing_keys[resources.PROVENANCE_KEY_ALIAS]
    public = kms.get_public_key(KeyId=key)["PublicKey"]
    signature = _sign(kms, key, b"before")
    queue_attributes = {
        name: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        for name, url in urls.items()
    }
    stale = CachitoRequestModel.get(3)
    CachitoRequestModel.get(3).save()  # version 2: ``stale`` (version 1) may not save
    tables, models = _dynamodb_view(dynamodb), _pynamodb_view()

    moto.restart()

    assert _dynamodb_view(dynamodb) == tables
    assert _pynamodb_view() == models
    with pytest.raises(PutError):
        stale.save()  # its condition still sees version 2
    assert CachitoRequestModel.get(3).version == 2
    fresh = CachitoRequestModel.get(3)
    fresh.state = "failed"
    fresh.save()
    assert CachitoRequestModel.get(3).version == 3
    for name, url in urls.items():  # queue URLs and ARNs as before, attributes too
        assert sqs.get_queue_url(QueueName=url.rsplit("/", 1)[1])["QueueUrl"] == url
        assert (
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            == queue_attributes[name]
        )
    [visible] = _receive(sqs, urls["work"])
    assert visible["MessageId"] == sent["visible"] and visible["Body"] == "visible"
    assert visible["MessageAttributes"]["kind"]["StringValue"] == "job"
    [dead] = _receive(sqs, urls["dlq"])
    assert dead["Body"] == "poison" and dead["Attributes"]["ApproximateReceiveCount"] == "2"
    assert _receive(sqs, urls["inflight"]) == [] and _receive(sqs, urls["delayed"]) == []
    [again] = _receive(sqs, urls["inflight"], wait=HIDDEN_SECONDS + 5)  # its timeout passed
    assert again["MessageId"] == sent["in flight"]["MessageId"]
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"
    [late] = _receive(sqs, urls["delayed"], wait=HIDDEN_SECONDS + 5)
    assert late["Body"] == "delayed"
    sqs.delete_message(QueueUrl=urls["inflight"], ReceiptHandle=sent["in flight"]["ReceiptHandle"])
    assert _receive(sqs, urls["inflight"]) == []  # the handle from before the restart deleted it

    assert kms.get_public_key(KeyId=key)["PublicKey"] == public
    assert _verifies(public, signature, b"before")
    assert _verifies(public, _sign(kms, key, b"after"), b"after")  # the same private key
    verified = kms.verify(
        KeyId=key,
        Message=hashlib.sha256(b"before").digest(),
        MessageType="DIGEST",
        Signature=signature,
        SigningAlgorithm="ECDSA_SHA_256",
    )
    assert verified["SignatureValid"]

    before = _dynamodb_view(dynamodb)
    again_provisioned = _provision()  # on restored state: nothing changes
    assert again_provisioned.signing_keys == first.signing_keys
    assert again_provisioned.queue_urls == first.queue_urls
    assert again_provisioned.dead_letter_urls == first.dead_letter_urls
    assert again_provisioned.tables == first.tables
    assert _dynamodb_view(dynamodb) == before
    assert len(kms.list_keys()["Keys"]) == len(first.signing_keys)


def test_acknowledged_writes_survive_a_kill(moto: Moto) -> None:
    provisioned = _provision()
    dynamodb, sqs, kms = moto.client("dynamodb"), moto.client("sqs"), moto.client("kms")
    _extra_table(dynamodb)
    _requests()
    urls = _queues(sqs)
    _messages(sqs, urls)
    tables, models = _dynamodb_view(dynamodb), _pynamodb_view()
    queue = provisioned.queue_urls[resources.UPLOAD_EVENTS_QUEUE]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"upload": "kept"}))
    key = provisioned.signing_keys[resources.PROVENANCE_KEY_ALIAS]
    public = kms.get_public_key(KeyId=key)["PublicKey"]

    moto.restart(kill=True)  # right after the last acknowledged write

    assert _dynamodb_view(dynamodb) == tables
    assert _pynamodb_view() == models
    [kept] = _receive(sqs, queue)
    assert json.loads(kept["Body"]) == {"upload": "kept"}
    assert kms.get_public_key(KeyId=key)["PublicKey"] == public
    again = _provision()
    assert again.signing_keys == provisioned.signing_keys
    assert again.queue_urls == provisioned.queue_urls
    assert base64.b64encode(public)  # the same key, usable
    assert _verifies(public, _sign(kms, key, b"after a kill"), b"after a kill")

    requests.post(f"{moto.url}/moto-api/reset", timeout=10)  # forgets the kept state too
    moto.restart()
    assert dynamodb.list_tables()["TableNames"] == []
    assert "QueueUrls" not in sqs.list_queues()
    assert kms.list_keys()["Keys"] == []
