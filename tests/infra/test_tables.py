"""The tables `make up` provisions from infra/resources.py, as a deployment must have them."""

from __future__ import annotations

import boto3

from infra.local.provision import Provisioned


def test_cachito_post_claims_expire_by_dynamodb_time_to_live(aws: Provisioned) -> None:
    """A POST's claim is needed only within its idempotency window: DynamoDB's TTL deletes
    it after (the claim's ``expires``), so the table does not grow for ever."""
    described = boto3.client("dynamodb", region_name="us-east-1").describe_time_to_live(
        TableName="kiln-cachito-submissions"
    )["TimeToLiveDescription"]
    assert described == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}


def test_tables_without_indexes_are_created_without_an_empty_index_list(
    aws: Provisioned,
) -> None:
    """DynamoDB refuses CreateTable with an empty GlobalSecondaryIndexes list (moto too)."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    counters = client.describe_table(TableName="kiln-counters")["Table"]
    assert not counters.get("GlobalSecondaryIndexes")
    requests = client.describe_table(TableName="kiln-cachito-requests")["Table"]
    assert {i["IndexName"] for i in requests["GlobalSecondaryIndexes"]} == {
        "by_tenant",
        "by_kind",
        "by_expiry",
    }
