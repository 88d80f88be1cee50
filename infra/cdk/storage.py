"""The KMS keys (the data key, and the provenance signing key), every DynamoDB table, the
artifact bucket and every queue with its dead-letter queue: all read from infra/resources.py,
nothing re-typed."""

from __future__ import annotations

import copy
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from chalicelib.config import UPLOAD_EVENTS_QUEUE
from infra import resources
from infra.cdk import nag
from infra.cdk.settings import DeploySettings

#: how long an unfinished multipart upload may wait: a Glance upload is queued again after
#: KILN_GLANCE_UPLOAD_TIMEOUT_SECONDS (6 h), so a day more is generous
ABORT_MULTIPART_DAYS = 2
#: cancel markers (control/jobs/<id>/cancel): a job lives at most 3 x 4 h (two heartbeat retries)
CANCEL_MARKER_DAYS = 7
NONCURRENT_VERSION_DAYS = 30
QUEUE_RETENTION = cdk.Duration.days(4)


class Storage(Construct):
    def __init__(self, scope: Construct, id: str, *, settings: DeploySettings) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)
        self.key = kms.Key(
            self,
            "Key",
            description="Kiln: tables, artifacts, queues and logs",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        # CloudWatch Logs encrypts the log groups with the key (its service principal, scoped to
        # this account's log groups)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=["*"],  # in a key policy "*" is this key
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                            service="logs", resource="log-group", resource_name="*"
                        )
                    }
                },
            )
        )
        self.signing_keys = self._signing_keys()
        self.provenance_key = self.signing_keys[resources.PROVENANCE_KEY_ALIAS]
        self.tables = self._tables(settings)
        self.table_arns = [table.attr_arn for table in self.tables.values()]
        self.queues, self.dead_letter_queues = self._queues()
        self.bucket = self._bucket(settings)

    # -- KMS: the asymmetric keys the API side signs with (resources.signing_keys) ------------
    def _signing_keys(self) -> dict[str, kms.Key]:
        keys = {}
        for spec in resources.signing_keys():
            key = kms.Key(
                self,
                _logical(spec.alias.removeprefix("alias/")),
                description=spec.description,
                key_spec=kms.KeySpec(spec.key_spec),
                key_usage=kms.KeyUsage(spec.key_usage),
                alias=spec.alias,
                # a signing key that goes takes every signature it made with it: kept
                removal_policy=cdk.RemovalPolicy.RETAIN,
            )
            keys[spec.alias] = key
        return keys

    # -- DynamoDB ----------------------------------------------------------------------------
    def _tables(self, settings: DeploySettings) -> dict[str, dynamodb.CfnTable]:
        ttl = resources.table_time_to_live(settings.table_prefix, settings.region)
        found: dict[str, dynamodb.CfnTable] = {}
        for spec in resources.tables(settings.table_prefix, settings.region):
            spec = copy.deepcopy(spec)
            name = spec["TableName"]
            table = dynamodb.CfnTable(
                self,
                _logical(name),
                table_name=name,
                billing_mode="PAY_PER_REQUEST",
                attribute_definitions=[_lower(a) for a in spec["AttributeDefinitions"]],
                key_schema=[_lower(k) for k in spec["KeySchema"]],
                global_secondary_indexes=[
                    {
                        "indexName": index["IndexName"],
                        "keySchema": [_lower(k) for k in index["KeySchema"]],
                        "projection": _projection(index["Projection"]),
                    }
                    for index in spec.get("GlobalSecondaryIndexes", [])
                ]
                or None,
                point_in_time_recovery_specification={"pointInTimeRecoveryEnabled": True},
                deletion_protection_enabled=settings.deletion_protection,
                sse_specification={
                    "sseEnabled": True,
                    "sseType": "KMS",
                    "kmsMasterKeyId": self.key.key_arn,
                },
                time_to_live_specification=(
                    {"attributeName": ttl[name], "enabled": True} if name in ttl else None
                ),
            )
            table.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
            found[name] = table
        return found

    # -- SQS ---------------------------------------------------------------------------------
    def _queues(self) -> tuple[dict[str, sqs.Queue], dict[str, sqs.Queue]]:
        queues: dict[str, sqs.Queue] = {}
        dead: dict[str, sqs.Queue] = {}
        for spec in resources.queues():
            letter = spec.dead_letter
            dead[spec.name] = sqs.Queue(
                self,
                _logical(letter.name),
                queue_name=letter.name,
                retention_period=cdk.Duration.seconds(letter.retention_seconds),
                encryption=sqs.QueueEncryption.KMS,
                encryption_master_key=self.key,
                enforce_ssl=True,
            )
            queues[spec.name] = sqs.Queue(
                self,
                _logical(spec.name),
                queue_name=spec.name,
                visibility_timeout=cdk.Duration.seconds(spec.visibility_timeout),
                retention_period=QUEUE_RETENTION,
                encryption=sqs.QueueEncryption.KMS,
                encryption_master_key=self.key,
                enforce_ssl=True,
                dead_letter_queue=sqs.DeadLetterQueue(
                    queue=dead[spec.name], max_receive_count=spec.max_receive_count
                ),
            )
            nag.suppress(
                dead[spec.name],
                "AwsSolutions-SQS3",
                f"{letter.name} is itself the dead-letter queue of {spec.name}",
            )
        return queues, dead

    # -- S3 ----------------------------------------------------------------------------------
    def _bucket(self, settings: DeploySettings) -> s3.Bucket:
        access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # log delivery writes SSE-S3 only
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(365))],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        nag.suppress(
            access_logs,
            "AwsSolutions-S1",
            "the server access log bucket itself: logging its own access would loop",
        )
        rules = [
            s3.LifecycleRule(
                id="abort-incomplete-multipart",
                abort_incomplete_multipart_upload_after=cdk.Duration.days(ABORT_MULTIPART_DAYS),
            ),
            s3.LifecycleRule(
                id="expire-cancel-markers",
                prefix="control/jobs/",
                expiration=cdk.Duration.days(CANCEL_MARKER_DAYS),
            ),
        ]
        if settings.bucket_versioning:
            rules.append(
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=cdk.Duration.days(NONCURRENT_VERSION_DAYS),
                    expired_object_delete_marker=True,
                )
            )
        # named (pseudo parameters, not a generated name) so that the queue policy and the key
        # policy can name the bucket without a reference to it: the bucket waits for both
        stack = cdk.Stack.of(self)
        self.bucket_name = settings.bucket_name or cdk.Fn.join(
            "-", ["kiln", stack.stack_name, "artifacts", stack.account, stack.region]
        )
        bucket = s3.Bucket(
            self,
            "Artifacts",
            bucket_name=self.bucket_name,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=settings.bucket_versioning,
            lifecycle_rules=rules,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="artifacts/",
            removal_policy=cdk.RemovalPolicy.RETAIN,
            # the web console (docs/console.md) fetches presigned downloads from the browser:
            # read-only, and the presigned signature is the authorization, so any origin
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.GET, s3.HttpMethods.HEAD],
                    allowed_origins=["*"],
                    allowed_headers=["Range"],
                    exposed_headers=["Content-Length", "Content-Range", "ETag"],
                    max_age=3600,
                )
            ],
        )
        self._notify_uploads(bucket)
        return bucket

    def _notify_uploads(self, bucket: s3.Bucket) -> None:
        """resources.upload_notification on the bucket itself (no custom resource), the queue
        policy and the key allowing S3 to send; S3 checks both when it saves the notification."""
        queue = self.queues[UPLOAD_EVENTS_QUEUE]
        stack = cdk.Stack.of(self)
        bucket_arn = stack.format_arn(
            service="s3", region="", account="", resource=self.bucket_name
        )
        source = {
            "ArnLike": {"aws:SourceArn": bucket_arn},
            "StringEquals": {"aws:SourceAccount": stack.account},
        }
        s3_principal = iam.ServicePrincipal("s3.amazonaws.com")
        queue.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[s3_principal],
                actions=["sqs:SendMessage"],
                resources=[queue.queue_arn],
                conditions=source,
            )
        )
        # the queue is encrypted: S3 needs a data key for the notifications it sends
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[s3_principal],
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],  # in a key policy "*" is this key
                conditions=source,
            )
        )
        configurations = resources.upload_notification(queue.queue_arn)["QueueConfigurations"]
        cfn_bucket: s3.CfnBucket = bucket.node.default_child  # type: ignore[assignment]
        cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            queue_configurations=[
                s3.CfnBucket.QueueConfigurationProperty(
                    event=event,
                    queue=config["QueueArn"],
                    filter=s3.CfnBucket.NotificationFilterProperty(
                        s3_key=s3.CfnBucket.S3KeyFilterProperty(
                            rules=[
                                s3.CfnBucket.FilterRuleProperty(name=r["Name"], value=r["Value"])
                                for r in config["Filter"]["Key"]["FilterRules"]
                            ]
                        )
                    ),
                )
                for config in configurations
                for event in config["Events"]
            ]
        )
        policy = queue.node.try_find_child("Policy")
        if policy is not None:  # S3 tests the destination when it saves the configuration
            bucket.node.add_dependency(policy)


def _logical(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


def _lower(item: dict[str, Any]) -> dict[str, Any]:
    """CreateTable's {"AttributeName": ...} as CloudFormation's camelCase L1 property."""
    return {key[0].lower() + key[1:]: value for key, value in item.items()}


def _projection(projection: dict[str, Any]) -> dict[str, Any]:
    found = {"projectionType": projection["ProjectionType"]}
    if projection.get("NonKeyAttributes"):
        found["nonKeyAttributes"] = projection["NonKeyAttributes"]
    return found
