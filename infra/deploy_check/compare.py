"""Deployed = local: what the synthesized templates create in moto, described the same way as
what infra/local/provision.py (`make up`'s code path) creates, so that the two can be compared.

``describe()`` reads, through the AWS APIs only: every ``kiln-*`` table (key schema, attribute
definitions, GSIs with key schema and projection, billing mode, TTL), every ``kiln-*`` queue
(visibility timeout, redrive policy as maxReceiveCount + dead-letter queue name, a dead-letter
queue's retention), the artifact bucket's notification configuration (queue ARNs as queue
names) and the state machine's definition (queue URLs as ``<queue:NAME>``).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
from collections.abc import Iterator
from typing import Any

from infra import resources
from infra.deploy_check.moto_deploy import MotoServer

PREFIX = "kiln"
_QUEUE_URL = re.compile(r"https?://[^\"\s]+?/\d{12}/([\w-]+)")


def describe(server: MotoServer, bucket: str, prefix: str = PREFIX) -> dict[str, Any]:
    return {
        "tables": _tables(server.client("dynamodb"), prefix),
        "queues": _queues(server.client("sqs"), prefix),
        "bucket_notifications": _notifications(server.client("s3"), bucket),
        "state_machine": _state_machine(server.client("stepfunctions")),
    }


def _tables(dynamodb: Any, prefix: str) -> dict[str, Any]:
    described = {}
    names = [n for n in dynamodb.list_tables()["TableNames"] if n.startswith(prefix + "-")]
    for name in sorted(names):
        table = dynamodb.describe_table(TableName=name)["Table"]
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        described[name] = {
            "KeySchema": table["KeySchema"],
            "AttributeDefinitions": sorted(
                table["AttributeDefinitions"], key=lambda a: a["AttributeName"]
            ),
            "GlobalSecondaryIndexes": {
                index["IndexName"]: {
                    "KeySchema": index["KeySchema"],
                    "Projection": _projection(index["Projection"]),
                }
                for index in table.get("GlobalSecondaryIndexes", [])
            },
            "LocalSecondaryIndexes": {
                index["IndexName"]: {
                    "KeySchema": index["KeySchema"],
                    "Projection": _projection(index["Projection"]),
                }
                for index in table.get("LocalSecondaryIndexes", [])
            },
            "BillingMode": table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED"),
            "TimeToLive": ttl.get("AttributeName")
            if ttl["TimeToLiveStatus"] == "ENABLED"
            else None,
        }
    return described


def _projection(projection: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ProjectionType": projection["ProjectionType"]}
    if projection.get("NonKeyAttributes"):
        out["NonKeyAttributes"] = sorted(projection["NonKeyAttributes"])
    return out


def _queues(sqs: Any, prefix: str) -> dict[str, Any]:
    described = {}
    urls = sqs.list_queues(QueueNamePrefix=prefix + "-").get("QueueUrls", [])
    for url in sorted(urls):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        name = attributes["QueueArn"].rsplit(":", 1)[1]
        entry: dict[str, Any] = {"VisibilityTimeout": int(attributes["VisibilityTimeout"])}
        if "RedrivePolicy" in attributes:
            policy = json.loads(attributes["RedrivePolicy"])
            entry["RedrivePolicy"] = {
                "maxReceiveCount": int(policy["maxReceiveCount"]),
                "deadLetterQueue": policy["deadLetterTargetArn"].rsplit(":", 1)[1],
            }
        described[name] = entry
    dead_letters = {
        entry["RedrivePolicy"]["deadLetterQueue"]
        for entry in described.values()
        if "RedrivePolicy" in entry
    }
    for url in urls:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        name = attributes["QueueArn"].rsplit(":", 1)[1]
        if name in dead_letters:
            described[name]["MessageRetentionPeriod"] = int(attributes["MessageRetentionPeriod"])
    return described


def _notifications(s3: Any, bucket: str) -> dict[str, Any]:
    configuration = s3.get_bucket_notification_configuration(Bucket=bucket)
    queues = []
    for entry in configuration.get("QueueConfigurations", []):
        rules = entry.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        queues.append(
            {
                "Queue": entry["QueueArn"].rsplit(":", 1)[1],
                "Events": sorted(entry["Events"]),
                "FilterRules": sorted((r["Name"].lower(), r["Value"]) for r in rules),
            }
        )
    queues.sort(key=lambda q: json.dumps(q, sort_keys=True))
    others = {
        kind: len(configuration.get(kind, []))
        for kind in ("TopicConfigurations", "LambdaFunctionConfigurations")
        if configuration.get(kind)
    }
    return {"QueueConfigurations": queues, **others}


def _state_machine(sfn: Any) -> Any:
    machines = [
        m
        for m in sfn.list_state_machines()["stateMachines"]
        if m["name"].startswith(resources.STATE_MACHINE_NAME)
    ]
    if len(machines) != 1:
        return {"machines": sorted(m["name"] for m in machines)}
    definition = sfn.describe_state_machine(stateMachineArn=machines[0]["stateMachineArn"])
    return json.loads(normalise_queue_urls(definition["definition"]))


def normalise_queue_urls(text: str) -> str:
    """Each SQS queue URL (AWS's or moto's) as ``<queue:NAME>``."""
    return _QUEUE_URL.sub(lambda match: f"<queue:{match.group(1)}>", text)


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def provision_locally(server: MotoServer, bucket: str, timing: resources.Timing) -> None:
    """What `make up` creates (infra/local/provision.py), in this moto."""
    from infra.local.provision import provision

    with environment(server.environment()):
        provision(server.client("sts").meta.region_name, PREFIX, bucket, timing)


def diff(local: dict[str, Any], deployed: dict[str, Any]) -> str:
    """A unified diff of the two descriptions ('' when equal)."""
    if local == deployed:
        return ""
    left = json.dumps(local, indent=1, sort_keys=True).splitlines()
    right = json.dumps(deployed, indent=1, sort_keys=True).splitlines()
    return "\n".join(
        difflib.unified_diff(left, right, "local (provision.py)", "deployed (CDK)", lineterm="")
    )
