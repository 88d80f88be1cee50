"""What the app's functions may do beyond their own logs and queues: Kiln's tables (and their
indexes), the artifact bucket and its key, the glance-imports queue, the provenance key."""

from __future__ import annotations

from aws_cdk import aws_iam as iam

from infra.cdk.storage import Storage

#: who may send to the glance-imports queue: the API (Glance imports), the build events (a
#: finished job's outputs to checksum)
GLANCE_IMPORT_SENDERS = ("api_handler", "on_build_event")
#: who uses the provenance signing key: the build events sign each successful job's provenance
#: (results.succeeded); the API publishes the public key (GET /kiln/v1/provenance/keys)
PROVENANCE_KEY_USERS = {
    "on_build_event": ("kms:Sign", "kms:GetPublicKey"),
    "api_handler": ("kms:GetPublicKey",),
}


def data_statements(storage: Storage) -> list[iam.PolicyStatement]:
    """Kiln's tables (and their indexes), the artifact bucket and the key."""
    tables = storage.table_arns
    return [
        iam.PolicyStatement(
            actions=[
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:BatchWriteItem",
                "dynamodb:ConditionCheckItem",
                "dynamodb:Query",
                "dynamodb:Scan",
                "dynamodb:DescribeTable",
            ],
            resources=[*tables, *(f"{arn}/index/*" for arn in tables)],
        ),
        iam.PolicyStatement(
            actions=[
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:GetObjectTagging",
                "s3:PutObjectTagging",
                "s3:DeleteObjectTagging",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            resources=[storage.bucket.arn_for_objects("*")],
        ),
        iam.PolicyStatement(
            actions=["s3:ListBucket", "s3:ListBucketMultipartUploads"],
            resources=[storage.bucket.bucket_arn],
        ),
        iam.PolicyStatement(
            actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            resources=[storage.key.key_arn],
        ),
    ]
