"""Creates every resource from infra/resources.py in an AWS endpoint (moto locally)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import Any

import botocore.exceptions

from chalicelib.adapters import aws_clients
from infra import resources

ROLE_ARN = "arn:aws:iam::123456789012:role/kiln-build-state-machine"
#: what S3 posts to a queue when a bucket's notifications are configured (not an upload)
TEST_EVENT = "s3:TestEvent"


@dataclasses.dataclass(frozen=True)
class Provisioned:
    queue_urls: dict[str, str]
    bucket: str
    state_machine_arn: str
    tables: list[str]
    #: each dead-letter queue's URL by its name (``<queue>-dlq``)
    dead_letter_urls: dict[str, str] = dataclasses.field(default_factory=dict)
    #: each signing key's ARN by its alias (resources.signing_keys)
    signing_keys: dict[str, str] = dataclasses.field(default_factory=dict)


def provision(region: str, table_prefix: str, bucket: str, timing: resources.Timing) -> Provisioned:
    dynamodb, s3, sqs, sfn, kms = (
        aws_clients.client(name, region)
        for name in ("dynamodb", "s3", "sqs", "stepfunctions", "kms")
    )

    existing = set(dynamodb.list_tables()["TableNames"])
    tables = []
    for schema in resources.tables(table_prefix, region):
        tables.append(schema["TableName"])
        if schema["TableName"] not in existing:
            dynamodb.create_table(**schema)
        else:  # kept from an earlier start (the stack's data dir): its items stay
            _add_indexes(dynamodb, schema)
    for table, attribute in resources.table_time_to_live(table_prefix, region).items():
        ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") == "ENABLED" and ttl.get("AttributeName") == attribute:
            continue  # as DynamoDB, which refuses to enable TTL twice
        dynamodb.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute},
        )

    queue_urls: dict[str, str] = {}
    dead_letter_urls: dict[str, str] = {}
    for spec in resources.queues():
        dead_letter = spec.dead_letter  # first: a redrive policy names an existing queue
        dead_letter_urls[dead_letter.name] = _queue(sqs, dead_letter.name, dead_letter.attributes())
        dead_letter_arn = sqs.get_queue_attributes(
            QueueUrl=dead_letter_urls[dead_letter.name], AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        queue_urls[spec.name] = _queue(sqs, spec.name, spec.attributes(dead_letter_arn))

    _create_bucket(s3, bucket, region)
    upload_queue = queue_urls[resources.UPLOAD_EVENTS_QUEUE]
    upload_arn = sqs.get_queue_attributes(QueueUrl=upload_queue, AttributeNames=["QueueArn"])
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration=resources.upload_notification(
            upload_arn["Attributes"]["QueueArn"]
        ),
    )
    _drain(sqs, upload_queue)  # S3 posts a TestEvent when notifications are configured

    definition = resources.render_state_machine(
        resources.state_machine_substitutions(queue_urls, timing)
    )
    arn = _state_machine(sfn, definition)
    return Provisioned(
        queue_urls=queue_urls,
        bucket=bucket,
        state_machine_arn=arn,
        tables=tables,
        dead_letter_urls=dead_letter_urls,
        signing_keys={spec.alias: _signing_key(kms, spec) for spec in resources.signing_keys()},
    )


def _signing_key(kms: Any, spec: resources.SigningKeySpec) -> str:
    """The key behind the alias, made (with the alias) when there is none."""
    for page in kms.get_paginator("list_aliases").paginate():
        for alias in page["Aliases"]:
            if alias["AliasName"] == spec.alias and alias.get("TargetKeyId"):
                return str(kms.describe_key(KeyId=alias["TargetKeyId"])["KeyMetadata"]["Arn"])
    created = kms.create_key(
        Description=spec.description, KeySpec=spec.key_spec, KeyUsage=spec.key_usage
    )["KeyMetadata"]
    kms.create_alias(AliasName=spec.alias, TargetKeyId=created["KeyId"])
    return str(created["Arn"])


#: what SQS answers a CreateQueue of an existing queue with other attributes
_QUEUE_EXISTS = {"QueueAlreadyExists", "QueueNameExists", "AWS.SimpleQueueService.QueueNameExists"}


def _queue(sqs: Any, name: str, attributes: dict[str, str]) -> str:
    """The queue's URL, made with these attributes; one kept from an earlier start (the
    stack's data dir) keeps its messages and takes the attributes resources.py now gives."""
    try:
        return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in _QUEUE_EXISTS:
            raise
    url = str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url


def _add_indexes(dynamodb: Any, schema: dict[str, Any]) -> None:
    """An existing table gets the global secondary indexes its model has gained since it was
    made (moto computes an index from the items, so the new one answers at once); nothing
    else about it changes."""
    table = dynamodb.describe_table(TableName=schema["TableName"])["Table"]
    present = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes") or []}
    missing = [
        index
        for index in schema.get("GlobalSecondaryIndexes", [])
        if index["IndexName"] not in present
    ]
    if missing:
        dynamodb.update_table(
            TableName=schema["TableName"],
            AttributeDefinitions=schema["AttributeDefinitions"],
            GlobalSecondaryIndexUpdates=[{"Create": index} for index in missing],
        )


def _create_bucket(s3: Any, bucket: str, region: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(**kwargs)


def _drain(sqs: Any, queue_url: str) -> None:
    """Delete S3's test events (S3 posts one each time notifications are configured, so on
    every start). Real upload events, kept from before a restart, stay for their handler:
    each one seen is made visible again at once (at the cost of one receive of its
    maxReceiveCount)."""
    kept: dict[str, str] = {}  # message id -> receipt handle
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60
        ).get("Messages", [])
        fresh = [message for message in messages if message["MessageId"] not in kept]
        if not fresh:
            break
        for message in fresh:
            if _is_test_event(message["Body"]):
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            else:
                kept[message["MessageId"]] = message["ReceiptHandle"]
    for handle in kept.values():
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=handle, VisibilityTimeout=0)


def _is_test_event(body: str) -> bool:
    try:
        event = json.loads(body)
    except ValueError:
        return False
    return isinstance(event, dict) and event.get("Event") == TEST_EVENT


def _state_machine(sfn: Any, definition: str) -> str:
    for machine in sfn.list_state_machines()["stateMachines"]:
        if machine["name"] == resources.STATE_MACHINE_NAME:
            sfn.update_state_machine(
                stateMachineArn=machine["stateMachineArn"], definition=definition
            )
            return str(machine["stateMachineArn"])
    created = sfn.create_state_machine(
        name=resources.STATE_MACHINE_NAME, definition=definition, roleArn=ROLE_ARN
    )
    return str(created["stateMachineArn"])
