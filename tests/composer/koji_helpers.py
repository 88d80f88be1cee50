"""What the Koji compose tests share: the ``koji`` section as koji-osbuild sends it, image
builds reported as a host reports them, and the build host's own koji-import run on the job
message the state machine carries, answered as the host answers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import boto3

from builders.host_config import HostConfig
from builders.koji_import import KojiImportRun
from builders.report import Reporter
from chalicelib.config import BUILD_EVENTS_QUEUE
from chalicelib.host_protocol import JobMessage, MediaType
from tests.composer.helpers import execution_input
from tests.conftest import BUCKET, Kiln
from tests.koji_cg_hub import KojiCGHub

KOJI_JOB_TYPES = ("create", "customize", "koji-import")

PLAN = {"format": "kiln-build-plan/1", "packages": [{"name": "base-files"}]}


def koji_section(hub: KojiCGHub, **changes: Any) -> dict[str, Any]:
    """What koji-osbuild sends: the hub, its task, and the build's N-V-R."""
    return {
        "server": hub.hub_url,
        "task_id": 42,
        "name": "debian-cloud",
        "version": "12",
        "release": "20261202.1",
        **changes,
    }


def executions(kiln: Kiln) -> dict[str, dict[str, Any]]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    listed = sfn.list_executions(stateMachineArn=kiln.provisioned.state_machine_arn)
    return {item["name"]: execution_input(kiln, item["name"]) for item in listed["executions"]}


def jobs(kiln: Kiln, compose_id: str, job_type: str) -> list[dict[str, Any]]:
    found = [
        m
        for m in executions(kiln).values()
        if m["job_type"] == job_type
        and (
            m.get("recipe", {}).get("key", "").startswith(f"composes/{compose_id}/")
            or (m.get("koji_import") or {}).get("directory", "").endswith(compose_id)
        )
    ]
    return sorted(found, key=lambda m: m.get("recipe", {}).get("key", ""))


def build_images(kiln: Kiln, compose_id: str, deliveries: int = 1) -> list[dict[str, Any]]:
    """Each image job succeeds as a host reports it: disk, build plan and log in S3; each
    result delivered ``deliveries`` times (SQS delivers at least once)."""
    s3 = boto3.client("s3", region_name="us-east-1")
    messages = jobs(kiln, compose_id, "create")
    for number, message in enumerate(messages):
        prefix = message["artifact_prefix"]
        disk = b"QFI\xfb" + bytes([number]) * 5000
        plan = json.dumps(PLAN).encode()
        for key, data in ((f"{prefix}disk.qcow2", disk), (f"{prefix}build-plan.json", plan)):
            s3.put_object(Bucket=BUCKET, Key=key, Body=data)
        s3.put_object(Bucket=BUCKET, Key=message["log_key"], Body=b"I: built\n")
        artifacts = [
            {
                "key": f"{prefix}disk.qcow2",
                "type": MediaType.DISK_QCOW2,
                "size": len(disk),
                "sha256": hashlib.sha256(disk).hexdigest(),
            },
            {
                "key": f"{prefix}build-plan.json",
                "type": MediaType.BUILD_PLAN_JSON,
                "size": len(plan),
                "sha256": hashlib.sha256(plan).hexdigest(),
            },
        ]
        output = {"manifest": {"etag": "e"}, "artifacts": artifacts, "log_key": message["log_key"]}
        result = {"type": "result", "outcome": "success", "job_id": message["job_id"]}
        for _ in range(deliveries):
            kiln.build_events({**result, "output": output})
    return messages


def run_import(kiln: Kiln, message: dict[str, Any], tmp_path: Path, hubs: str) -> dict[str, Any]:
    """The build host's koji-import run on the message, then its answer as the result event."""
    region = "us-east-1"
    sqs, s3 = boto3.client("sqs", region_name=region), boto3.client("s3", region_name=region)
    events = kiln.provisioned.queue_urls[BUILD_EVENTS_QUEUE]
    config = HostConfig(
        arch="x86_64",
        xname="x86-host",
        build_queue_url="",
        events_queue_url=events,
        work_dir=tmp_path / "host",
        heartbeat_seconds=30,
        region=region,
        koji_hubs=hubs,
    )
    reporter = Reporter(sqs, s3, boto3.client("stepfunctions", region_name=region), events, "h")
    run = KojiImportRun(JobMessage.from_dict(message), reporter, s3, config, lambda: False)
    result = {"type": "result", "job_id": message["job_id"]}
    try:
        output = run.execute()
    except Exception as exc:
        failure = {"Error": f"{exc.code.wire}: {exc}"}  # type: ignore[attr-defined]
        event = {**result, "outcome": "failure", "error": failure}
    else:
        event = {**result, "outcome": "success", "output": output.to_dict()}
    kiln.build_events(event)
    return event
