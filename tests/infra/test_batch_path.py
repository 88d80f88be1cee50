"""The AWS Batch path (docs/batch.md): the feeder against in-process moto (SQS, Step Functions
executing a ``.waitForTaskToken`` task, Batch), and a `make up` stack with
``KILN_BATCH_ARCHES=x86_64`` running a real Cachito request through the feeder, moto's Batch
API and the local runner's one-shot agent."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.batch_simple.models import BatchSimpleBackend
from moto.moto_api import state_manager

from builders.batch_feeder import FeederConfig, batch_job_name, feed_once, token_in
from infra.local import batch_runner
from infra.local.process import StackProcess
from tests.cachito.atomic_client import CachitoAPI
from tests.cachito.git_server import GitServer
from tests.conftest import free_port, use_test_aws_env

REGION = "us-east-1"


class World:
    """A build queue, a state machine whose task sends ``{"job", "token"}`` to it and waits
    for the token, and the arch's Batch resources."""

    def __init__(self) -> None:
        self.sqs, self.sfn, self.batch = (
            boto3.client(name, region_name=REGION) for name in ("sqs", "stepfunctions", "batch")
        )
        self.queue = self.sqs.create_queue(QueueName="kiln-builds-x86_64")["QueueUrl"]
        events = self.sqs.create_queue(QueueName="kiln-build-events")["QueueUrl"]
        names = batch_runner.provision(REGION, "x86_64")
        self.config = FeederConfig(
            arch="x86_64",
            build_queue_url=self.queue,
            events_queue_url=events,
            job_queue=names.job_queue,
            job_definition=names.job_definition,
            recipe_types=("noop",),
            job_types=("create",),
            wait_seconds=1,
        )
        task = {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "HeartbeatSeconds": 60,
            "Parameters": {
                "QueueUrl": self.queue,
                "MessageBody": {"job.$": "$", "token.$": "$$.Task.Token"},
            },
            "End": True,
        }
        self.machine = self.sfn.create_state_machine(
            name="build",
            definition=json.dumps({"StartAt": "Build", "States": {"Build": task}}),
            roleArn="arn:aws:iam::123456789012:role/kiln",
        )["stateMachineArn"]

    def start(self, job: dict[str, Any]) -> tuple[str, str]:
        """A build execution; its execution ARN and the message body it sent (left queued)."""
        execution = self.sfn.start_execution(
            stateMachineArn=self.machine, name=job["job_id"], input=json.dumps(job)
        )["executionArn"]
        deadline = time.time() + 30
        while time.time() < deadline:
            for message in self.sqs.receive_message(QueueUrl=self.queue, WaitTimeSeconds=1).get(
                "Messages", []
            ):
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
                if json.loads(message["Body"])["job"]["job_id"] == job["job_id"]:
                    return execution, message["Body"]
        raise AssertionError("the state machine sent no message")

    def feed(self) -> dict[str, int]:
        return feed_once(self.sqs, self.batch, self.sfn, self.config)

    def queued(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def jobs(self, name: str | None = None) -> list[dict[str, Any]]:
        filters = [{"name": "JOB_NAME", "values": [name or "kiln-*"]}]
        return list(
            self.batch.list_jobs(jobQueue=self.config.job_queue, filters=filters)["jobSummaryList"]
        )

    def ended(self, execution: str) -> dict[str, Any]:
        """The execution once it is no longer RUNNING (or after 20 s)."""
        deadline = time.time() + 20
        while True:
            described = self.sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING" or time.time() > deadline:
                return dict(described)
            time.sleep(0.2)

    def close(self, execution: str, body: str) -> None:
        """The task ends elsewhere (answered by another container): its token is closed."""
        token = json.loads(body)["token"]
        self.sfn.send_task_failure(taskToken=token, error="HostError: answered elsewhere")
        assert self.ended(execution)["status"] == "FAILED"


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    use_test_aws_env(monkeypatch)
    config = {"stepfunctions": {"execute_state_machine": True}, "batch": {"use_docker": False}}
    with mock_aws(config=config):  # type: ignore[arg-type]
        yield World()


@pytest.fixture
def capacity_wait(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Submitted jobs stay RUNNABLE (no capacity) instead of moto's instant SUCCEEDED; a job
    TerminateJob marked is FAILED, without having started, once ``settle`` runs."""

    def runnable(self: Any, include_start_attempt: bool, job: Any) -> None:
        self.backend._jobs[job.job_id] = job
        job.status = "RUNNABLE"

    monkeypatch.setattr(BatchSimpleBackend, "_mark_job_as_finished", runnable)
    state_manager.set_transition("batch::job", {"progression": "manual", "times": 10**9})
    yield
    state_manager.unset_transition("batch::job")


def settle() -> None:
    """What Batch does with a terminated job that never ran: FAILED, with the reason."""
    from moto.batch.models import batch_backends

    for job in batch_backends["123456789012"][REGION]._jobs.values():
        if job.stop:
            job._mark_stopped(success=False)


def test_a_redelivered_message_makes_one_batch_job(world: World) -> None:
    execution, body = world.start({"job_id": "job-1"})
    world.sqs.send_message(QueueUrl=world.queue, MessageBody=body)  # the same message again
    summary = world.feed()
    assert summary["received"] == 2 and summary["submitted"] == 1 and summary["found"] == 1
    token = json.loads(body)["token"]
    (job,) = world.jobs()
    assert job["jobName"] == batch_job_name("job-1", token)
    assert world.queued() == 0  # both deleted: the Batch job stands for the message now
    (described,) = world.batch.describe_jobs(jobs=[job["jobId"]])["jobs"]
    assert token_in(described) == token
    world.sqs.send_message(QueueUrl=world.queue, MessageBody=body)  # later, once more
    assert world.feed()["found"] == 1 and len(world.jobs()) == 1
    assert world.sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"


def test_a_job_waiting_for_capacity_is_heartbeaten_and_never_redelivered(
    world: World, capacity_wait: None
) -> None:
    execution, _ = world.start({"job_id": "job-w"})
    assert world.feed()["submitted"] == 1 and world.queued() == 0
    for _ in range(3):  # each pass beats the waiting job's token
        assert world.feed() == {"waiting_ok": 1}
    (job,) = world.jobs()
    assert job["status"] == "RUNNABLE"
    assert world.sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"


def test_a_closed_token_deletes_the_message_and_the_job_does_not_run(
    world: World, capacity_wait: None
) -> None:
    execution, body = world.start({"job_id": "job-c"})
    world.close(execution, body)
    assert world.feed()["closed"] == 1
    assert world.queued() == 0
    settle()
    (job,) = world.jobs(batch_job_name("job-c", json.loads(body)["token"]))
    assert job["status"] == "FAILED" and "token is closed" in job["statusReason"]
    runner = batch_runner.Runner(batch_runner.BatchNames("x86_64"), {}, 2, REGION)
    runner.poll()  # the local compute environment runs no terminated job
    assert runner.ran == []


def test_a_token_closed_while_waiting_terminates_the_job(world: World, capacity_wait: None) -> None:
    execution, body = world.start({"job_id": "job-t"})
    assert world.feed()["submitted"] == 1
    world.close(execution, body)
    assert world.feed() == {"waiting_closed": 1}
    settle()
    (job,) = world.jobs()
    assert job["status"] == "FAILED"
    assert world.feed() == {}  # terminated by the feeder: not failed again


def test_a_job_that_failed_before_it_ran_fails_the_task(world: World, capacity_wait: None) -> None:
    execution, _ = world.start({"job_id": "job-f"})
    world.feed()
    (job,) = world.jobs()
    world.batch.terminate_job(jobId=job["jobId"], reason="CannotPullContainerError: no image")
    settle()
    assert world.feed() == {"failed_unstarted": 1}
    assert world.ended(execution)["status"] == "FAILED"
    events = world.sfn.get_execution_history(executionArn=execution)["events"]
    error = next(
        e["executionFailedEventDetails"]["error"] for e in events if e["type"] == "ExecutionFailed"
    )
    assert error.startswith("HostError: the AWS Batch job kiln-job-f-")
    assert "failed before it ran: CannotPullContainerError: no image" in error


def test_a_message_too_large_for_batch_fails_the_task_clearly(world: World) -> None:
    execution, _ = world.start({"job_id": "job-big", "template_dictionary": {"x": "y" * 9000}})
    assert world.feed() == {"received": 1, "too_large": 1}
    assert world.queued() == 0 and world.jobs() == []
    assert world.ended(execution)["status"] == "FAILED"
    events = world.sfn.get_execution_history(executionArn=execution)["events"]
    error = next(
        e["executionFailedEventDetails"]["error"] for e in events if e["type"] == "ExecutionFailed"
    )
    assert error.startswith("HostError: the job message is ")
    assert "as an AWS Batch container override; Batch takes at most 8192" in error


def test_batch_arches_are_checked() -> None:
    assert batch_runner.arches_from_env({"KILN_BATCH_ARCHES": " x86_64,,x86_64"}) == ("x86_64",)
    assert batch_runner.arches_from_env({}) == ()
    with pytest.raises(ValueError, match="unknown arch sparc"):
        batch_runner.arches_from_env({"KILN_BATCH_ARCHES": "x86_64,sparc"})


def test_make_up_with_an_unknown_batch_arch_exits_2(tmp_path: Path) -> None:
    stack = StackProcess(tmp_path, free_port(), free_port(), KILN_BATCH_ARCHES="risc")
    with pytest.raises(RuntimeError, match="unknown arch risc"):
        stack.__enter__()
    assert stack.process is not None and stack.process.wait(timeout=30) == 2


def test_make_up_runs_a_cachito_request_through_batch(tmp_path: Path) -> None:
    (tmp_path / "stack").mkdir()
    with (
        GitServer(tmp_path / "repos") as git,
        StackProcess(
            tmp_path / "stack",
            free_port(),
            free_port(),
            KILN_BUILD_HOSTS="x86_64",  # no emulated host: x86_64 is served by Batch alone
            KILN_BATCH_ARCHES="x86_64",
            KILN_CACHITO_ARCH="x86_64",
            KILN_CACHITO_ALLOW="127.0.0.0/8",
        ) as stack,
    ):
        assert stack.info["build_hosts"] == []  # no polling host
        repo, ref = git.repo("batch-app", {"README": "built on Batch\n"})
        api = CachitoAPI(stack.info["cachito_url"], stack.info["tokens"]["user"], backoff=0.5)
        done = api.wait_for_request(
            api.request_sources(repo, ref, pkg_managers=[])["id"], timeout=300
        )
        assert done["state"] == "complete", stack.output()

        batch = boto3.client(
            "batch",
            region_name=REGION,
            endpoint_url=stack.info["aws_endpoint_url"],
            aws_access_key_id="kiln-local",
            aws_secret_access_key="kiln-local",
        )
        listed = batch.list_jobs(
            jobQueue="kiln-builds-x86_64", filters=[{"name": "JOB_NAME", "values": ["kiln-*"]}]
        )["jobSummaryList"]
        (job,) = batch.describe_jobs(jobs=[j["jobId"] for j in listed])["jobs"]
        message = json.loads(
            next(
                e["value"]
                for e in job["container"]["environment"]
                if e["name"] == "KILN_JOB_MESSAGE"
            )
        )
        assert message["job"]["source_request"]["repo"] == repo
        assert job["jobName"] == batch_job_name(message["job"]["job_id"], message["token"])

        nodes = stack.ims("GET", "/v3/remote-build-nodes", role="admin").json()
        assert [(n["xname"], n["arch"], n["status"]) for n in nodes] == [
            ("batch-x86_64", "x86_64", "ready")
        ], nodes
        assert "cachito" in nodes[0]["job_types"]
