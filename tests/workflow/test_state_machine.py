"""The real ASL (infra/statemachines/build.asl.json) on moto server, with a test host that
answers task tokens by hand."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from chalicelib.config import BUILD_EVENTS_QUEUE, build_queue_name
from tests.conftest import MotoStack


class HandHost:
    def __init__(self, stack: MotoStack, arch: str = "x86_64") -> None:
        self.sqs, self.sfn = stack.client("sqs"), stack.client("stepfunctions")
        self.queue = stack.provisioned.queue_urls[build_queue_name(arch)]
        self.events = stack.provisioned.queue_urls[BUILD_EVENTS_QUEUE]
        self.arn = stack.provisioned.state_machine_arn

    def start(self, arch: str = "x86_64") -> str:
        job_id = str(uuid.uuid4())
        self.sfn.start_execution(
            stateMachineArn=self.arn,
            name=job_id,
            input=json.dumps({"job_id": job_id, "arch": arch}),
        )
        return job_id

    def take(self, timeout: float = 10) -> dict[str, Any]:
        """The next build message (job + task token) from the arch's queue."""
        return self._receive(self.queue, timeout, "no build message arrived")

    def result(self, timeout: float = 15) -> dict[str, Any]:
        """The next message the state machine posted on the build-events queue."""
        return self._receive(self.events, timeout, "no result arrived")

    def _receive(self, queue_url: str, timeout: float, missing: str) -> dict[str, Any]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            messages = self.sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get(
                "Messages", []
            )
            for message in messages:
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                return dict(json.loads(message["Body"]))
        raise AssertionError(missing)


def test_success_reports_the_hosts_output(moto_server: MotoStack) -> None:
    host = HandHost(moto_server)
    job_id = host.start()
    message = host.take()
    assert message["job"]["job_id"] == job_id
    host.sfn.send_task_heartbeat(taskToken=message["token"])
    host.sfn.send_task_success(taskToken=message["token"], output=json.dumps({"image_id": "i"}))
    result = host.result()
    assert result == {
        "type": "result",
        "outcome": "success",
        "job_id": job_id,
        "output": {"image_id": "i"},
    }


def test_failure_carries_the_error(moto_server: MotoStack) -> None:
    host = HandHost(moto_server)
    job_id = host.start()
    message = host.take()
    host.sfn.send_task_failure(taskToken=message["token"], error="BuildFailed: no such package")
    result = host.result()
    assert result["outcome"] == "failure" and result["job_id"] == job_id
    assert result["error"]["Error"] == "BuildFailed: no such package"


def test_silent_host_is_retried_once_then_succeeds(moto_server: MotoStack) -> None:
    host = HandHost(moto_server)
    job_id = host.start()
    first = host.take()  # ... and say nothing: the heartbeat (2 s) runs out
    second = host.take(timeout=15)
    assert second["job"]["job_id"] == job_id
    host.sfn.send_task_success(taskToken=second["token"], output=json.dumps({"try": 2}))
    result = host.result()
    assert result["outcome"] == "success" and result["output"] == {"try": 2}
    assert first["job"] == second["job"]


def test_host_silent_twice_ends_in_a_timeout_failure(moto_server: MotoStack) -> None:
    host = HandHost(moto_server)
    job_id = host.start()
    host.take()
    host.take(timeout=15)
    result = host.result(timeout=20)
    assert result["outcome"] == "failure" and result["job_id"] == job_id
    assert result["error"]["Error"] in ("States.Timeout", "States.HeartbeatTimeout")


def test_each_arch_has_its_own_queue_and_unknown_arch_fails(moto_server: MotoStack) -> None:
    arm = HandHost(moto_server, arch="aarch64")
    job_id = arm.start(arch="aarch64")
    assert arm.take()["job"]["job_id"] == job_id
    bad = arm.start(arch="riscv64")
    result = arm.result()
    assert result["job_id"] == bad and result["error"]["Error"].startswith("UnsupportedArch")
