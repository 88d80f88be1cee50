"""A build host in the test's process: the host's job code (builders/job_run.py with the
kiln-noop backend) runs the job the API dispatched, against the in-process moto of the
``kiln`` fixture; its progress and its result reach the API as build events, as the queue and
the state machine would deliver them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import boto3

from builders.host_config import HostConfig
from builders.job_run import CreateRun
from builders.report import Reporter
from chalicelib.host_protocol import JobMessage, NodeHeartbeat, Progress
from tests.composer.helpers import execution_input
from tests.conftest import Kiln

XNAME = "test-host"


class _Recorder(Reporter):
    """The host's reporter, keeping its events for the test to deliver."""

    def __init__(self, s3: Any) -> None:
        super().__init__(None, s3, None, "", XNAME)
        self.events: list[dict[str, Any]] = []

    def event(self, message: Progress | NodeHeartbeat) -> None:
        body = dataclasses.asdict(message)
        self.events.append({key: value for key, value in body.items() if value is not None})

    def take(self) -> list[dict[str, Any]]:
        taken, self.events = self.events, []
        return taken


class InProcessHost:
    def __init__(self, kiln: Kiln, work_dir: Path) -> None:
        self.kiln = kiln
        self.s3 = boto3.client("s3", region_name="us-east-1")
        self.reporter = _Recorder(self.s3)
        self.config = HostConfig(
            arch="x86_64",
            xname=XNAME,
            build_queue_url="",
            events_queue_url="",
            work_dir=work_dir,
            heartbeat_seconds=60,
            region="us-east-1",
        )
        self.steps: dict[str, list[str]] = {}  # job id -> the statuses its host reported

    def message(self, job_id: str) -> JobMessage:
        """The job as the state machine hands it to a host."""
        return JobMessage.from_dict(execution_input(self.kiln, job_id))

    def build(self, job_id: str, deliver: bool = True, **changes: Any) -> dict[str, Any]:
        """Run the dispatched job (its message with ``changes``); deliver its progress and
        result unless told not to. Returns the result event."""
        job = dataclasses.replace(self.message(job_id), log_chunk_prefix="", **changes)
        run = CreateRun(job, self.reporter, self.s3, self.config, should_stop=lambda: False)
        output = run.execute()
        events = self.reporter.take()
        self.steps[job_id] = [event["status"] for event in events]
        result = {
            "type": "result",
            "outcome": "success",
            "job_id": job_id,
            "output": output.to_dict(),
        }
        if deliver:
            self.kiln.build_events(*events)
            self.kiln.build_events(result)
        return result

    def log(self, job_id: str) -> str:
        body = self.s3.get_object(
            Bucket=self.kiln.provisioned.bucket, Key=f"jobs/{job_id}/build.log"
        )
        return str(body["Body"].read().decode())

    def read_json(self, key: str) -> Any:
        body = self.s3.get_object(Bucket=self.kiln.provisioned.bucket, Key=key)["Body"].read()
        return json.loads(body)

    def keys(self, prefix: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.kiln.provisioned.bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))
