"""The build-host agent against the real state machine on moto server, with the noop backend."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError, EndpointConnectionError

from builders import uploads
from builders.agent import Agent
from builders.control import registration_key
from builders.host_config import HostConfig
from chalicelib.config import BUILD_EVENTS_QUEUE, build_queue_name
from chalicelib.host_protocol import PROTOCOL_VERSION, BuildOutput, Failure, FailureCode
from tests.conftest import BUCKET, MotoStack, make_archive

# One host name and SSH port range per pytest-xdist worker: a starting agent stops the SSH
# servers left under /run/kiln-ssh/<xname>/, and a test may check its session's port is closed
# afterwards; neither must touch another worker's live sessions.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
XNAME = f"test-x86-{_WORKER}"
_FIRST_PORT = 2200 + 20 * (int(_WORKER.removeprefix("gw") or 0) % 5)
SSH_PORTS = (_FIRST_PORT, _FIRST_PORT + 19)
HAND_TOKEN = "hand-token"  # the token of jobs put on the queue by hand: a task taken as open
CANCELLED = "Cancelled: the job was deleted"  # a cancelled job's answer, as the wire spells it
CANCELLED_ANSWER = Failure(FailureCode.CANCELLED, "the job was deleted")


def sfn_error(code: str, status: int = 400) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": code}}
    response["ResponseMetadata"] = {"HTTPStatusCode": status}
    return ClientError(response, "SendTaskHeartbeat")


class HostSfn:
    """The host's Step Functions client: moto's, except that HAND_TOKEN's heartbeats are taken
    (its job has no execution) and ``heartbeat_errors[token]`` are raised first, one a beat."""

    def __init__(self, sfn: Any) -> None:
        self._sfn = sfn
        self.heartbeat_errors: dict[str, list[Exception]] = {}
        self.answered: list[str] = []  # the tokens the host answered, success or failure

    def send_task_heartbeat(self, taskToken: str) -> Any:  # noqa: N803 (boto3's name)
        if self.heartbeat_errors.get(taskToken):
            raise self.heartbeat_errors[taskToken].pop(0)
        return {} if taskToken == HAND_TOKEN else self._sfn.send_task_heartbeat(taskToken=taskToken)

    def send_task_success(self, **kwargs: Any) -> Any:
        self.answered.append(kwargs["taskToken"])
        return self._sfn.send_task_success(**kwargs)

    def send_task_failure(self, **kwargs: Any) -> Any:
        self.answered.append(kwargs["taskToken"])
        return self._sfn.send_task_failure(**kwargs)


class Harness:
    """A build host driven by hand against moto server (registered unless told otherwise)."""

    def __init__(
        self,
        stack: MotoStack,
        work_dir: Path,
        registered: bool | None = True,
        clients: uploads.ClientFactory | None = None,
    ) -> None:
        self.stack = stack
        self.sqs, self.s3 = stack.client("sqs"), stack.client("s3")
        self.sfn = stack.client("stepfunctions")
        self.queue = stack.provisioned.queue_urls[build_queue_name("x86_64")]
        self.events = stack.provisioned.queue_urls[BUILD_EVENTS_QUEUE]
        config = HostConfig(
            arch="x86_64",
            xname=XNAME,
            build_queue_url=self.queue,
            events_queue_url=self.events,
            work_dir=work_dir,
            heartbeat_seconds=2,
            region=stack.region,
            poll_wait_seconds=1,
            node_heartbeat_seconds=1,
            bucket=BUCKET,
            ssh_ports=SSH_PORTS,
        )
        if registered is not None:
            self.register(registered)
        self.host_sfn = HostSfn(self.sfn)
        self.agent = Agent(
            config, self.sqs, self.s3, self.host_sfn, Logger(service="test-host"), clients
        )
        self.thread = threading.Thread(target=self.agent.run, daemon=True)
        self.seen: list[dict[str, Any]] = []

    def __enter__(self) -> Harness:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.agent.stop()
        self.thread.join(timeout=15)

    def register(self, registered: bool) -> None:
        """What the API side writes when an admin registers (or drains) the node."""
        body = json.dumps({"registered": registered})
        self.s3.put_object(Bucket=BUCKET, Key=registration_key(XNAME), Body=body)

    def cancel(self, job: dict[str, Any]) -> None:
        """What the API side writes when the job's owner deletes it."""
        self.s3.put_object(Bucket=BUCKET, Key=job["cancel_key"], Body=b"")

    def start_job(
        self, recipe_yaml: str, sha256: str | None = None, start: bool = True, **extra: Any
    ) -> dict[str, Any]:
        job_id, image_id = str(uuid.uuid4()), str(uuid.uuid4())
        archive = make_archive({"recipe.yaml": recipe_yaml})
        key = f"recipes/{job_id}/recipe.tar.gz"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=archive)
        job = {  # a host_protocol.JobMessage, as the service dispatches a create job
            "job_id": job_id,
            "kind": "ims-create",
            "job_type": "create",
            "tenant": "demo",
            "arch": "x86_64",
            "recipe_type": "kiln-noop",
            "recipe": {
                "bucket": BUCKET,
                "key": key,
                "sha256": sha256 or hashlib.sha256(archive).hexdigest(),
            },
            "bucket": BUCKET,
            "image_id": image_id,
            "artifact_prefix": f"images/{image_id}/",
            "log_key": f"jobs/{job_id}/build.log",
            "log_chunk_prefix": "",  # no live log chunks
            "image_root_archive_name": "img",
            "template_dictionary": {"A": "1"},
            "source_date_epoch": 1700000000,
            "cancel_key": f"control/jobs/{job_id}/cancel",
            **extra,
        }
        if start:
            self.start(job)
        return job

    def enqueue(self, job: dict[str, Any], token: str = HAND_TOKEN) -> None:
        """The job on the build queue as the state machine sends it, with a token of no task."""
        body = json.dumps({"job": job, "token": token})
        self.sqs.send_message(QueueUrl=self.queue, MessageBody=body)

    def start(self, job: dict[str, Any]) -> None:
        self.sfn.start_execution(
            stateMachineArn=self.stack.provisioned.state_machine_arn,
            name=job["job_id"],
            input=json.dumps(job),
        )

    def collect(self, seconds: float = 0.0) -> list[dict[str, Any]]:
        deadline = time.time() + seconds
        while True:
            got = self.sqs.receive_message(
                QueueUrl=self.events, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            for message in got:
                self.sqs.delete_message(
                    QueueUrl=self.events, ReceiptHandle=message["ReceiptHandle"]
                )
                self.seen.append(json.loads(message["Body"]))
            if time.time() >= deadline and not got:
                return self.seen

    def progress(self, job_id: str) -> list[dict[str, Any]]:
        return [m for m in self.seen if m.get("type") == "progress" and m.get("job_id") == job_id]

    def wait_for_status(self, job_id: str, status: str, timeout: float = 20) -> dict[str, Any]:
        """The job's first progress event with ``status``."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.collect()
            for message in self.progress(job_id):
                if message["status"] == status:
                    return message
        raise AssertionError(f"no {status} for {job_id}; saw {self.seen}")

    def queued(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def result(self, job_id: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for message in self.collect():
                if message.get("type") == "result" and message["job_id"] == job_id:
                    return message
        raise AssertionError(f"no result for {job_id}; saw {self.seen}")


@pytest.fixture
def harness(moto_server: MotoStack, tmp_path: Path) -> Any:
    with Harness(moto_server, tmp_path) as h:
        yield h


def test_success_publishes_artifacts_manifest_and_log(harness: Harness) -> None:
    job = harness.start_job("name: hello\n")
    result = harness.result(job["job_id"])
    assert result["outcome"] == "success"
    output = result["output"]
    assert output["image_id"] == job["image_id"] and output["node"] == XNAME
    manifest = json.loads(
        harness.s3.get_object(Bucket=BUCKET, Key=output["manifest"]["key"])["Body"].read()
    )
    (rootfs,) = manifest["artifacts"]
    assert rootfs["type"] == "application/vnd.cray.image.rootfs.squashfs"
    assert output["artifacts"] == [
        {
            "key": f"images/{job['image_id']}/img.squashfs",
            "type": rootfs["type"],
            "size": rootfs["size"],
            "sha256": rootfs["sha256"],
        }
    ]
    data = harness.s3.get_object(Bucket=BUCKET, Key=f"images/{job['image_id']}/img.squashfs")[
        "Body"
    ].read()
    assert hashlib.sha256(data).hexdigest() == rootfs["sha256"] and len(data) == rootfs["size"]
    assert hashlib.md5(data).hexdigest() == rootfs["md5"]
    log = harness.s3.get_object(Bucket=BUCKET, Key=output["log_key"])["Body"].read().decode()
    assert "== building_image" in log
    statuses = [
        m["status"]
        for m in harness.seen
        if m.get("type") == "progress" and m["job_id"] == job["job_id"]
    ]
    assert statuses == ["fetching_recipe", "waiting_for_repos", "building_image"]
    nodes = [m for m in harness.seen if m.get("type") == "node_heartbeat"]
    assert nodes and "kiln-noop" in nodes[0]["recipe_types"] and nodes[0]["arch"] == "x86_64"
    assert nodes[0]["accepting"] is True and nodes[0]["job_types"][0] == "create"


def test_success_reports_seconds_per_stage(harness: Harness) -> None:
    job = harness.start_job("name: slow\nsleep: 0.5\n")
    output = harness.result(job["job_id"])["output"]
    timings = output["timings"]
    assert {"fetch", "resolve", "build", "package"} <= set(timings), timings
    assert timings["build"] >= 0.5 and "upload" not in timings  # no upload target
    assert all(seconds >= 0 for seconds in timings.values())
    assert sum(timings.values()) <= output["build_seconds"] + 0.01
    assert output["started_at"] <= output["answered_at"]


def test_events_carry_the_protocol_and_heartbeats_the_slots(harness: Harness) -> None:
    job = harness.start_job("name: hello\n")
    assert harness.result(job["job_id"])["outcome"] == "success"
    nodes = [m for m in harness.seen if m.get("type") == "node_heartbeat"]
    assert nodes and all(m["protocol"] == PROTOCOL_VERSION and m["slots"] == 1 for m in nodes)
    assert {m["current_job"] for m in nodes} >= {None, job["job_id"]}
    progress = harness.progress(job["job_id"])
    assert progress and all(m["protocol"] == PROTOCOL_VERSION for m in progress)
    assert not any("ssh_containers" in m or "upload_status" in m for m in progress)


def test_a_job_of_another_protocol_version_is_answered_and_not_built(harness: Harness) -> None:
    job = harness.start_job("name: newer\n", protocol=PROTOCOL_VERSION + 1)
    result = harness.result(job["job_id"])
    assert result["outcome"] == "failure"
    assert result["error"]["Error"] == (
        f"ProtocolMismatch: host {XNAME} cannot read the job: job protocol "
        f"{PROTOCOL_VERSION + 1}, this host speaks {PROTOCOL_VERSION}"
    )
    assert harness.progress(job["job_id"]) == []
    assert harness.agent.answers.get(job["job_id"]) is None  # another host may read it
    listed = harness.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"images/{job['image_id']}/")
    assert listed.get("KeyCount", 0) == 0
    # the host goes on taking jobs of its own version
    assert harness.result(harness.start_job("name: same\n")["job_id"])["outcome"] == "success"


def test_a_job_message_lacking_fields_is_answered_host_error(harness: Harness) -> None:
    job = harness.start_job("name: partial\n", start=False)
    del job["kind"], job["cancel_key"]
    harness.start(job)
    result = harness.result(job["job_id"])
    assert result["error"]["Error"] == (
        f"HostError: host {XNAME} cannot read the job: job message lacks kind, cancel_key"
    )
    assert harness.progress(job["job_id"]) == []


def test_build_error_is_answered_with_an_actionable_reason(harness: Harness) -> None:
    job = harness.start_job('fail: "package foo does not exist"\n')
    result = harness.result(job["job_id"])
    assert result["outcome"] == "failure"
    assert result["error"]["Error"] == "BuildFailed: package foo does not exist"
    log = harness.s3.get_object(Bucket=BUCKET, Key=f"jobs/{job['job_id']}/build.log")
    assert b"package foo does not exist" in log["Body"].read()


def test_changed_recipe_archive_is_refused(harness: Harness) -> None:
    job = harness.start_job("name: x\n", sha256="0" * 64)
    result = harness.result(job["job_id"])
    assert "changed since it was checked" in result["error"]["Error"]


def test_redelivered_finished_job_is_acknowledged_not_rebuilt(harness: Harness) -> None:
    job = harness.start_job("name: once\n")
    assert harness.result(job["job_id"])["outcome"] == "success"
    key = f"images/{job['image_id']}/manifest.json"
    etag = harness.s3.head_object(Bucket=BUCKET, Key=key)["ETag"]
    answer = harness.agent.answers.get(job["job_id"])
    assert isinstance(answer, BuildOutput) and answer.image_id == job["image_id"]
    # the same message again, as a Retry or an SQS redelivery would bring it
    harness.sqs.send_message(
        QueueUrl=harness.queue, MessageBody=json.dumps({"job": job, "token": "stale-token"})
    )
    harness.collect(seconds=3)
    assert (
        harness.sqs.get_queue_attributes(
            QueueUrl=harness.queue, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )
    assert harness.s3.head_object(Bucket=BUCKET, Key=key)["ETag"] == etag
    progress = [m for m in harness.seen if m.get("type") == "progress"]
    assert len(progress) == 3  # one build's worth of progress, not two


def test_sigterm_mid_build_sends_no_partial_result(harness: Harness) -> None:
    job = harness.start_job("sleep: 6\n")
    deadline = time.time() + 10
    while time.time() < deadline and not any(
        m.get("status") == "building_image" for m in harness.collect()
    ):
        pass
    harness.agent.stop()
    harness.thread.join(timeout=10)
    assert not harness.thread.is_alive()
    assert harness.agent.answers.get(job["job_id"]) is None
    results = [m for m in harness.collect(seconds=1) if m.get("type") == "result"]
    assert results == []


def answered(harness: Harness, job: dict[str, Any], timeout: float = 20) -> str:
    """How the host answered the job: "success", or its failure's code (wire spelling)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        answer = harness.agent.answers.get(job["job_id"])
        if isinstance(answer, BuildOutput):
            return "success"
        if isinstance(answer, Failure):
            return answer.code.wire
        harness.collect()
    raise AssertionError(f"no answer for {job['job_id']}")


# A job that waits in the queue outlives the state machine's 2-second heartbeat here, so these
# tests put their jobs on the build queue directly, with HAND_TOKEN (the host's heartbeats are
# taken; its answer finds no open task).
def test_unregistered_host_takes_no_work_until_registered(
    moto_server: MotoStack, tmp_path: Path
) -> None:
    with Harness(moto_server, tmp_path, registered=None) as harness:
        job = harness.start_job("name: later\n", start=False)
        harness.enqueue(job)
        harness.collect(seconds=3)
        # the job waits in the queue, untouched (>=: another test's leftovers may share it)
        assert harness.queued() >= 1 and harness.agent.answers.get(job["job_id"]) is None
        assert not harness.progress(job["job_id"])
        nodes = [m for m in harness.seen if m.get("type") == "node_heartbeat"]
        assert len(nodes) >= 2 and not any(m["accepting"] for m in nodes)
        harness.register(True)
        assert answered(harness, job) == "success"
        harness.collect(seconds=1)
        assert any(m.get("accepting") for m in harness.seen if m.get("type") == "node_heartbeat")


def test_drained_host_finishes_its_job_and_takes_no_more(harness: Harness) -> None:
    first = harness.start_job("sleep: 2\n", start=False)
    harness.enqueue(first)
    harness.wait_for_status(first["job_id"], "building_image")
    harness.register(False)  # drain
    second = harness.start_job("name: second\n", start=False)
    harness.enqueue(second)
    assert answered(harness, first) == "success"
    harness.collect(seconds=3)
    assert harness.queued() >= 1 and not harness.progress(second["job_id"])
    assert harness.agent.answers.get(second["job_id"]) is None
    harness.register(True)
    assert answered(harness, second) == "success"


def test_finish_answers_the_job_in_hand_then_the_host_stops(harness: Harness) -> None:
    """SIGUSR1, a fleet's scale-in drain: the job in hand runs to its answer, none is taken
    after it, and the agent returns (SIGTERM instead abandons the job to the retry)."""
    first = harness.start_job("sleep: 2\n", start=False)
    harness.enqueue(first)
    harness.wait_for_status(first["job_id"], "building_image")
    harness.agent.finish()
    second = harness.start_job("name: second\n", start=False)
    harness.enqueue(second)
    assert answered(harness, first) == "success"
    harness.thread.join(timeout=20)
    assert not harness.thread.is_alive()
    assert harness.agent.answers.get(second["job_id"]) is None
    assert harness.queued() >= 1 and not harness.progress(second["job_id"])


def test_job_cancelled_before_it_starts_is_answered_without_building(harness: Harness) -> None:
    job = harness.start_job("name: never\n", start=False)
    harness.cancel(job)
    harness.start(job)
    result = harness.result(job["job_id"])
    assert result["outcome"] == "failure" and result["error"]["Error"] == CANCELLED
    assert harness.progress(job["job_id"]) == []
    assert harness.agent.answers.get(job["job_id"]) == CANCELLED_ANSWER


def test_cancelled_build_stops_and_answers_cancelled(harness: Harness) -> None:
    job = harness.start_job("sleep: 30\n")
    harness.wait_for_status(job["job_id"], "building_image")
    started = time.time()
    harness.cancel(job)
    result = harness.result(job["job_id"])
    assert result["error"]["Error"] == CANCELLED and time.time() - started < 10
    assert harness.agent.answers.get(job["job_id"]) == CANCELLED_ANSWER
    listed = harness.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"images/{job['image_id']}/")
    assert listed.get("KeyCount", 0) == 0


@pytest.mark.parametrize("code", ["InvalidToken", "TaskTimedOut", "TaskDoesNotExist"])
def test_closed_task_token_stops_the_job_unanswered_and_the_next_is_taken(
    harness: Harness, code: str
) -> None:
    first = harness.start_job("sleep: 30\n", start=False)
    token = f"closed-{code}"  # moto answers InvalidToken for it; the other codes as AWS would
    if code != "InvalidToken":
        harness.host_sfn.heartbeat_errors[token] = [sfn_error(code)]
    harness.enqueue(first, token=token)
    harness.wait_for_status(first["job_id"], "building_image")
    second = harness.start_job("name: next\n", start=False)
    harness.enqueue(second)
    # built within 20 s: the first job (30 s) was stopped, not built to its end
    assert answered(harness, second) == "success"
    assert harness.agent.answers.get(first["job_id"]) is None  # a redelivery builds it again
    assert token not in harness.host_sfn.answered
    listed = harness.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"images/{first['image_id']}/")
    assert listed.get("KeyCount", 0) == 0
    log = harness.s3.get_object(Bucket=BUCKET, Key=first["log_key"])["Body"].read().decode()
    assert "job stopped: Step Functions closed its task" in log and code in log


def test_transient_heartbeat_errors_do_not_stop_the_job(harness: Harness) -> None:
    job = harness.start_job("sleep: 3\n", start=False)
    errors: list[Exception] = [
        sfn_error("ThrottlingException"),
        sfn_error("ServiceUnavailable", status=503),
        EndpointConnectionError(endpoint_url="https://states.example"),
    ]
    harness.host_sfn.heartbeat_errors[HAND_TOKEN] = errors
    harness.enqueue(job)
    answer = answered(harness, job)
    assert errors == []  # every error was met while the job ran ...
    assert answer == "success"  # ... and it was built to its end and answered
    assert HAND_TOKEN in harness.host_sfn.answered
