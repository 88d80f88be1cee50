"""Every table, bucket, queue, the provenance signing key and the state machine: one
definition, read by the local stack (infra/local) and by the AWS deployment."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from chalicelib.adapters.models import bind_tables, table_schemas, time_to_live
from chalicelib.config import (
    ARCHES,
    BUILD_EVENTS_QUEUE,
    GLANCE_IMPORTS_QUEUE,
    UPLOAD_EVENTS_QUEUE,
    build_queue_name,
    dead_letter_queue_name,
)

STATE_MACHINE_FILE = Path(__file__).parent / "statemachines" / "build.asl.json"
STATE_MACHINE_NAME = "kiln-build"
_PLACEHOLDER = re.compile(r"^\$\{(\w+)\}$")


@dataclasses.dataclass(frozen=True)
class Timing:
    heartbeat_seconds: int = 60
    job_timeout_seconds: int = 4 * 3600


#: Receives without a delete before SQS moves a message to its queue's dead-letter queue.
MAX_RECEIVE_COUNT = 5
#: How long a dead letter is kept (SQS's maximum): the cleanup schedule reports it meanwhile.
DEAD_LETTER_RETENTION_SECONDS = 14 * 86400
#: The Lambda event source mapping of a queue a Chalice handler consumes: the handler returns
#: {"batchItemFailures": [{"itemIdentifier": <messageId>}]}, and only those messages come back.
#: Without it Lambda ignores that answer and deletes the whole batch, failed messages too.
#: (`chalice deploy` does not set FunctionResponseTypes: the deployment must.)
PARTIAL_BATCH_RESPONSE = ("ReportBatchItemFailures",)


@dataclasses.dataclass(frozen=True)
class DeadLetterSpec:
    name: str
    retention_seconds: int = DEAD_LETTER_RETENTION_SECONDS

    def attributes(self) -> dict[str, str]:
        return {"MessageRetentionPeriod": str(self.retention_seconds)}


@dataclasses.dataclass(frozen=True)
class QueueSpec:
    name: str
    visibility_timeout: int
    purpose: str
    #: FunctionResponseTypes of the queue's Lambda event source mapping; () for a queue that no
    #: Lambda consumes (the build queues: build hosts poll them)
    function_response_types: tuple[str, ...] = ()
    max_receive_count: int = MAX_RECEIVE_COUNT

    @property
    def dead_letter(self) -> DeadLetterSpec:
        return DeadLetterSpec(dead_letter_queue_name(self.name))

    def attributes(self, dead_letter_arn: str) -> dict[str, str]:
        """The queue's attributes, its redrive policy naming its dead-letter queue's ARN."""
        policy = {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": self.max_receive_count}
        return {
            "VisibilityTimeout": str(self.visibility_timeout),
            "RedrivePolicy": json.dumps(policy),
        }


def queues() -> list[QueueSpec]:
    """Every queue, each with a dead-letter queue (``<name>-dlq``). A Lambda-consumed queue's
    visibility timeout is what a failed message waits before it is tried again (on AWS; the
    local driver retries sooner), so a poisoned message reaches its dead-letter queue after
    about MAX_RECEIVE_COUNT x visibility_timeout."""
    build = [
        QueueSpec(build_queue_name(arch), 60, f"build jobs for {arch} hosts (task token inside)")
        for arch in ARCHES
    ]
    partial = PARTIAL_BATCH_RESPONSE
    return build + [
        QueueSpec(
            BUILD_EVENTS_QUEUE, 120, "host progress/heartbeats and each job's final result", partial
        ),
        QueueSpec(UPLOAD_EVENTS_QUEUE, 300, "S3 ObjectCreated notifications for uploads", partial),
        QueueSpec(
            GLANCE_IMPORTS_QUEUE, 900, "Glance imports and build outputs to checksum", partial
        ),
    ]


#: the alias of the key that signs build provenance (chalicelib/config.py provenance_key_id's
#: default; docs/provenance.md)
PROVENANCE_KEY_ALIAS = "alias/kiln-provenance"


@dataclasses.dataclass(frozen=True)
class SigningKeySpec:
    """An asymmetric KMS key the API side signs with (the private half never leaves KMS)."""

    alias: str
    description: str
    key_spec: str = "ECC_NIST_P256"
    key_usage: str = "SIGN_VERIFY"
    signing_algorithm: str = "ECDSA_SHA_256"


def signing_keys() -> list[SigningKeySpec]:
    return [
        SigningKeySpec(
            PROVENANCE_KEY_ALIAS,
            "Kiln: signs the SLSA provenance of build outputs (DSSE, ECDSA P-256)",
        )
    ]


def tables(prefix: str, region: str) -> list[dict[str, Any]]:
    bind_tables(prefix, region)
    return table_schemas()


def table_time_to_live(prefix: str, region: str) -> dict[str, str]:
    """Table name -> its TTL attribute, for the tables whose items expire (UpdateTimeToLive)."""
    bind_tables(prefix, region)
    return time_to_live()


def upload_notification(queue_arn: str) -> dict[str, Any]:
    """Bucket -> SQS: recipe archives and Glance data uploaded straight to S3 notify the
    upload-events queue."""
    return {
        "QueueConfigurations": [
            {
                "Id": "recipe-uploads",
                "QueueArn": queue_arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "recipes/"}]}},
            },
            {
                "Id": "glance-direct-uploads",
                "QueueArn": queue_arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {
                    "Key": {
                        "FilterRules": [
                            {"Name": "prefix", "Value": "glance/"},
                            {"Name": "suffix", "Value": "/direct"},
                        ]
                    }
                },
            },
        ]
    }


def state_machine_substitutions(queue_urls: dict[str, str], timing: Timing) -> dict[str, Any]:
    subs: dict[str, Any] = {
        "BuildEventsQueueUrl": queue_urls[BUILD_EVENTS_QUEUE],
        "HeartbeatSeconds": timing.heartbeat_seconds,
        "JobTimeoutSeconds": timing.job_timeout_seconds,
    }
    for arch in ARCHES:
        subs[f"BuildQueueUrl_{arch}"] = queue_urls[build_queue_name(arch)]
    return subs


def render_state_machine(substitutions: dict[str, Any]) -> str:
    """The ASL with each "${Name}" string replaced by its value (numbers stay numbers)."""

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: fill(value) for key, value in node.items()}
        if isinstance(node, list):
            return [fill(value) for value in node]
        if isinstance(node, str):
            match = _PLACEHOLDER.match(node)
            if match:
                if match.group(1) not in substitutions:
                    raise KeyError(f"state machine placeholder {node} has no value")
                return substitutions[match.group(1)]
        return node

    definition = json.loads(STATE_MACHINE_FILE.read_text(encoding="utf-8"))
    return json.dumps(fill(definition))
