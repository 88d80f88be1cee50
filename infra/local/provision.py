"""Creates every resource from infra/resources.py in an AWS endpoint (moto locally)."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from chalicelib.adapters import aws_clients
from infra import resources

ROLE_ARN = "arn:aws:iam::123456789012:role/kiln-build-state-machine"


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
    for table, attribute in resources.table_time_to_live(table_prefix, region).items():
        dynamodb.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute},
        )

    queue_urls: dict[str, str] = {}
    dead_letter_urls: dict[str, str] = {}
    for spec in resources.queues():
        dead_letter = spec.dead_letter  # first: a redrive policy names an existing queue
        dead_letter_urls[dead_letter.name] = sqs.create_queue(
            QueueName=dead_letter.name, Attributes=dead_letter.attributes()
        )["QueueUrl"]
        dead_letter_arn = sqs.get_queue_attributes(
            QueueUrl=dead_letter_urls[dead_letter.name], AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        queue_urls[spec.name] = sqs.create_queue(
            QueueName=spec.name, Attributes=spec.attributes(dead_letter_arn)
        )["QueueUrl"]

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


def _create_bucket(s3: Any, bucket: str, region: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(**kwargs)


def _drain(sqs: Any, queue_url: str) -> None:
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not messages:
            return
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


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
