"""The synthesized templates deployed into moto's CloudFormation (SAM expanded, assets
uploaded): the stack reaches CREATE_COMPLETE, one build walks through the deployed state
machine with this test as its build host, and what was deployed is what `make up` creates."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.config import BUILD_EVENTS_QUEUE, build_queue_name
from chalicelib.host_protocol import Artifact, BuildOutput, JobMessage, JobResult, decode_event
from infra import resources
from infra.deploy_check import Synth, compare
from infra.deploy_check.moto_deploy import (
    Deployment,
    deploy,
    moto_server,
    quiet_event_source_mappings,
)

WAIT = 30  # seconds for moto's Step Functions to move


@pytest.fixture(scope="module")
def deployed(assembly: Synth, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    log = tmp_path_factory.mktemp("moto-deploy") / "moto.log"
    with moto_server(log, execute=False) as server:
        deployment = deploy(assembly.out, server)
        quiet_event_source_mappings(server)
        yield deployment


def _queue_urls(deployment: Deployment) -> dict[str, str]:
    return {url.rsplit("/", 1)[1]: url for url in deployment.physical("AWS::SQS::Queue")}


def _receive(sqs: Any, url: str, timeout: float = WAIT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
        if messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
            return dict(json.loads(messages[0]["Body"]))
    raise AssertionError(f"nothing arrived on {url} in {timeout} s")


def _finished(sfn: Any, execution_arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return dict(described)
        time.sleep(0.1)
    raise AssertionError(f"{execution_arn} still RUNNING after {WAIT} s")


def _job(arch: str) -> JobMessage:
    job_id = str(uuid.uuid4())
    return JobMessage(
        job_id=job_id,
        kind="ims-create",
        job_type="create",
        tenant="demo",
        arch=arch,
        recipe_type="kiwi-ng",
        bucket="kiln-artifacts",
        image_id=str(uuid.uuid4()),
        artifact_prefix=f"images/{job_id}/",
        log_key=f"logs/{job_id}.log",
        log_chunk_prefix=f"logs/{job_id}/",
        cancel_key=f"cancel/{job_id}",
        source_date_epoch=1_700_000_000,
    )


def test_the_templates_deploy_into_moto(deployed: Deployment) -> None:
    """CREATE_COMPLETE, with every table, queue and the state machine created. What moto left
    out (types its CloudFormation does not implement), the docker assets not uploaded and what
    was adapted for moto are printed (docs/deploy-checks.md)."""
    print(f"\ndeployed in {deployed.seconds:.1f} s")
    for kind, stacks in sorted(deployed.skipped.items()):
        print(f"moto skipped {kind} (in {', '.join(sorted(set(stacks)))})")
    for asset in deployed.skipped_assets:
        print(f"docker image asset not uploaded: {asset}")
    for note in deployed.adaptations:
        print(f"adapted for moto: {note}")
    tables = {t["TableName"] for t in resources.tables(compare.PREFIX, "us-east-1")}
    assert tables <= set(deployed.physical("AWS::DynamoDB::Table"))
    queues = {spec.name for spec in resources.queues()}
    queues |= {spec.dead_letter.name for spec in resources.queues()}
    assert queues <= set(_queue_urls(deployed))
    assert len(deployed.physical("AWS::StepFunctions::StateMachine")) == 1
    for critical in ("AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::StepFunctions::StateMachine",
                     "AWS::S3::Bucket", "AWS::Lambda::Function"):  # fmt: skip
        assert critical not in deployed.skipped, critical


def test_a_build_walks_through_the_deployed_state_machine(deployed: Deployment) -> None:
    """This test is the build host: it takes the job from the deployed x86_64 build queue,
    heartbeats, answers with SendTaskSuccess, and the deployed state machine reports the
    success on the deployed build-events queue."""
    sfn, sqs = deployed.server.client("stepfunctions"), deployed.server.client("sqs")
    urls = _queue_urls(deployed)
    (machine,) = deployed.physical("AWS::StepFunctions::StateMachine")
    job = _job("x86_64")
    execution = sfn.start_execution(
        stateMachineArn=machine, name=job.job_id, input=json.dumps(job.to_dict())
    )

    delivered = _receive(sqs, urls[build_queue_name("x86_64")])
    assert JobMessage.from_dict(delivered["job"]) == job
    token = delivered["token"]
    sfn.send_task_heartbeat(taskToken=token)
    output = BuildOutput(
        image_id=job.image_id,
        artifacts=[Artifact(f"{job.artifact_prefix}rootfs", "application/octet-stream", 3)],
        manifest={"key": f"{job.artifact_prefix}manifest.json", "etag": "e", "sha256": "0" * 64},
        log_key=job.log_key,
        node="x1000c0s0b0n0",
        build_seconds=1.5,
    )
    sfn.send_task_success(taskToken=token, output=json.dumps(output.to_dict()))

    finished = _finished(sfn, execution["executionArn"])
    assert finished["status"] == "SUCCEEDED", finished
    reported = _receive(sqs, urls[BUILD_EVENTS_QUEUE])
    assert reported["outcome"] == "success", reported
    result = decode_event(reported)
    assert isinstance(result, JobResult) and result.failure is None, result
    assert result.job_id == job.job_id
    assert result.output == output


def test_an_unsupported_arch_reaches_report_failure(deployed: Deployment) -> None:
    sfn, sqs = deployed.server.client("stepfunctions"), deployed.server.client("sqs")
    (machine,) = deployed.physical("AWS::StepFunctions::StateMachine")
    job = _job("s390x")
    execution = sfn.start_execution(
        stateMachineArn=machine, name=job.job_id, input=json.dumps(job.to_dict())
    )
    assert _finished(sfn, execution["executionArn"])["status"] == "SUCCEEDED"
    reported = _receive(sqs, _queue_urls(deployed)[BUILD_EVENTS_QUEUE])
    assert reported["outcome"] == "failure", reported
    assert reported["error"]["Error"].startswith("UnsupportedArch"), reported
    result = decode_event(reported)
    assert isinstance(result, JobResult) and result.failure is not None
    assert result.job_id == job.job_id


def _artifact_bucket(deployment: Deployment) -> str:
    """The deployed bucket that notifies a queue (the artifact bucket; the others hold logs)."""
    s3 = deployment.server.client("s3")
    found = [
        bucket
        for bucket in deployment.physical("AWS::S3::Bucket")
        if s3.get_bucket_notification_configuration(Bucket=bucket).get("QueueConfigurations")
    ]
    assert len(found) == 1, f"buckets with queue notifications: {found}"
    return found[0]


def test_what_is_deployed_is_what_make_up_provisions(
    deployed: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Tables, queues, the bucket's notifications and the state machine, described through the
    AWS APIs, are the same in the deployed stack as in what infra/local/provision.py makes."""
    deployed_view = compare.describe(deployed.server, _artifact_bucket(deployed))
    log = tmp_path_factory.mktemp("moto-local") / "moto.log"
    with moto_server(log) as local:
        compare.provision_locally(local, "kiln-artifacts", resources.Timing())
        local_view = compare.describe(local, "kiln-artifacts")
    difference = compare.diff(local_view, deployed_view)
    assert not difference, "deployed != local:\n" + difference
