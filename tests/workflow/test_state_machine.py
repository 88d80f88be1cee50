"""The real ASL (infra/statemachines/build.asl.json) on moto server, with a test host that
answers task tokens by hand, and a real build host (builders/agent.py, kiln-noop jobs)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from botocore.exceptions import EndpointConnectionError

from builders.agent import Agent
from builders.control import registration_key
from builders.host_config import HostConfig
from chalicelib.config import BUILD_EVENTS_QUEUE, build_queue_name
from tests.conftest import BUCKET, MotoStack, make_archive


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

    def run(self, job: dict[str, Any]) -> str:
        """An execution for a whole job (as the API starts it); its ARN."""
        return str(
            self.sfn.start_execution(
                stateMachineArn=self.arn, name=job["job_id"], input=json.dumps(job)
            )["executionArn"]
        )

    def take(self, timeout: float = 10) -> dict[str, Any]:
        """The next build message (job + task token) from the arch's queue."""
        return self._receive(self.queue, timeout, "no build message arrived")

    def result(self, timeout: float = 15) -> dict[str, Any]:
        """The next message the state machine posted on the build-events queue."""
        return self._receive(self.events, timeout, "no result arrived")

    def event(self, job_id: str, kind: str, status: str = "", timeout: float = 20) -> Any:
        """The job's next ``kind`` message (``status``, for progress) on the build-events
        queue, passing over (and deleting) the others a real host also posts there."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            message = self._receive(self.events, deadline - time.time(), f"no {kind} {status}")
            if (message.get("job_id"), message["type"]) == (job_id, kind) and (
                kind != "progress" or message["status"] == status
            ):
                return message
        raise AssertionError(f"no {kind} {status} for {job_id}")

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


class CutOffSfn:
    """A host's Step Functions client whose heartbeats fail, as over a broken network, while
    ``cut_off`` is set."""

    def __init__(self, sfn: Any) -> None:
        self._sfn, self.cut_off = sfn, threading.Event()

    def send_task_heartbeat(self, taskToken: str) -> Any:  # noqa: N803 (boto3's name)
        if self.cut_off.is_set():
            raise EndpointConnectionError(endpoint_url="https://states.example")
        return self._sfn.send_task_heartbeat(taskToken=taskToken)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return getattr(self._sfn, name)  # type: ignore[no-any-return]


@dataclasses.dataclass
class RealHost:
    agent: Agent
    sfn: CutOffSfn  # the host's Step Functions client


@pytest.fixture
def real_host(moto_server: MotoStack, tmp_path: Path) -> Iterator[RealHost]:
    """A registered build host (HeartbeatSeconds 2, as the state machine) on a thread."""
    s3, sfn = moto_server.client("s3"), CutOffSfn(moto_server.client("stepfunctions"))
    xname = f"workflow-host-{os.environ.get('PYTEST_XDIST_WORKER', 'gw0')}"
    s3.put_object(Bucket=BUCKET, Key=registration_key(xname), Body=b'{"registered": true}')
    config = HostConfig(
        arch="x86_64",
        xname=xname,
        build_queue_url=moto_server.provisioned.queue_urls[build_queue_name("x86_64")],
        events_queue_url=moto_server.provisioned.queue_urls[BUILD_EVENTS_QUEUE],
        work_dir=tmp_path,
        heartbeat_seconds=2,
        region=moto_server.region,
        poll_wait_seconds=1,
        bucket=BUCKET,
    )
    agent = Agent(config, moto_server.client("sqs"), s3, sfn, Logger(service="test-host"))
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    yield RealHost(agent, sfn)
    agent.stop()
    thread.join(timeout=15)


def noop_job(s3: Any, recipe_yaml: str) -> dict[str, Any]:
    """A kiln-noop create job, its recipe archive uploaded."""
    job_id, image_id = str(uuid.uuid4()), str(uuid.uuid4())
    archive = make_archive({"recipe.yaml": recipe_yaml})
    key = f"recipes/{job_id}/recipe.tar.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=archive)
    recipe = {"bucket": BUCKET, "key": key, "sha256": hashlib.sha256(archive).hexdigest()}
    return {
        "job_id": job_id,
        "kind": "ims-create",
        "job_type": "create",
        "tenant": "demo",
        "arch": "x86_64",
        "recipe_type": "kiln-noop",
        "recipe": recipe,
        "bucket": BUCKET,
        "image_id": image_id,
        "artifact_prefix": f"images/{image_id}/",
        "log_key": f"jobs/{job_id}/build.log",
        "log_chunk_prefix": f"jobs/{job_id}/log/",
        "cancel_key": f"control/jobs/{job_id}/cancel",
        "image_root_archive_name": "img",
        "source_date_epoch": 1700000000,
    }


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


def assert_stopped_unanswered(real: RealHost, s3: Any, job: dict[str, Any]) -> None:
    assert real.agent.answers.get(job["job_id"]) is None  # a redelivery would build it again
    log = s3.get_object(Bucket=BUCKET, Key=job["log_key"])["Body"].read().decode()
    assert "job stopped: Step Functions closed its task" in log


def test_host_cut_off_past_the_heartbeat_stops_the_timed_out_job_and_takes_the_next(
    moto_server: MotoStack, real_host: RealHost
) -> None:
    host, s3 = HandHost(moto_server), moto_server.client("s3")
    real_host.sfn.cut_off.set()  # its heartbeats fail, as over a broken network: it builds on
    first = noop_job(s3, "sleep: 60\n")
    host.run(first)
    host.event(first["job_id"], "progress", "building_image")
    # no heartbeat gets through: both tries time out (2 s each) and the execution ends so
    failed = host.event(first["job_id"], "result")
    assert failed["error"]["Error"] in ("States.Timeout", "States.HeartbeatTimeout")
    assert host.take()["job"] == first  # the retry's delivery, left waiting: the host is busy
    real_host.sfn.cut_off.clear()
    # back online, the host hears its task is closed, stops the job (60 s), takes the next
    second = noop_job(s3, "name: next\n")
    host.run(second)
    assert host.event(second["job_id"], "result")["outcome"] == "success"
    assert_stopped_unanswered(real_host, s3, first)


def test_stopped_execution_stops_the_hosts_job_and_it_takes_the_next(
    moto_server: MotoStack, real_host: RealHost
) -> None:
    host, s3 = HandHost(moto_server), moto_server.client("s3")
    first = noop_job(s3, "sleep: 60\n")
    execution = host.run(first)
    host.event(first["job_id"], "progress", "building_image")
    host.sfn.stop_execution(executionArn=execution, error="Stopped", cause="by the test")
    second = noop_job(s3, "name: next\n")
    host.run(second)
    assert host.event(second["job_id"], "result")["outcome"] == "success"
    assert_stopped_unanswered(real_host, s3, first)
