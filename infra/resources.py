"""Every table, bucket, queue and the state machine: one definition, read by the local stack
(infra/local) and by the AWS deployment."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from chalicelib.adapters.models import bind_tables, table_schemas
from chalicelib.config import (
    ARCHES,
    BUILD_EVENTS_QUEUE,
    GLANCE_IMPORTS_QUEUE,
    UPLOAD_EVENTS_QUEUE,
    build_queue_name,
)

STATE_MACHINE_FILE = Path(__file__).parent / "statemachines" / "build.asl.json"
STATE_MACHINE_NAME = "kiln-build"
_PLACEHOLDER = re.compile(r"^\$\{(\w+)\}$")


@dataclasses.dataclass(frozen=True)
class Timing:
    heartbeat_seconds: int = 60
    job_timeout_seconds: int = 4 * 3600


@dataclasses.dataclass(frozen=True)
class QueueSpec:
    name: str
    visibility_timeout: int
    purpose: str


def queues() -> list[QueueSpec]:
    build = [
        QueueSpec(build_queue_name(arch), 60, f"build jobs for {arch} hosts (task token inside)")
        for arch in ARCHES
    ]
    return build + [
        QueueSpec(BUILD_EVENTS_QUEUE, 120, "host progress/heartbeats and each job's final result"),
        QueueSpec(UPLOAD_EVENTS_QUEUE, 300, "S3 ObjectCreated notifications for uploads"),
        QueueSpec(GLANCE_IMPORTS_QUEUE, 900, "Glance imports and build outputs to checksum"),
    ]


def tables(prefix: str, region: str) -> list[dict[str, Any]]:
    bind_tables(prefix, region)
    return table_schemas()


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
