"""After the local stack restarts on its data (chalicelib/domain/builds/recovery.py): the build
executions died with moto, the job records did not. A restart is played here by forgetting
every execution of the in-process moto: the build queues are purged of their dead task tokens,
an unfinished job holding a slot is started again (same slot, a reason saying why), a waiting
job keeps waiting, an ended job is left alone; and provisioning again (as every start does)
deletes S3's test events but keeps real upload events."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from chalicelib import container as container_module
from chalicelib.adapters import records
from chalicelib.adapters.models import JobModel
from chalicelib.config import UPLOAD_EVENTS_QUEUE, build_queue_name
from chalicelib.domain.builds import capacity, recovery
from chalicelib.domain.builds.job_records import update
from infra import resources
from infra.local.provision import Provisioned, provision
from tests.conftest import BUCKET, REGION, Kiln
from tests.ims.helpers import create_job, public_key, ready_recipe

ACCOUNT = "123456789012"


def forget_executions() -> None:
    """What a restart of the stack does to Step Functions: no execution is left."""
    from moto.stepfunctions.models import stepfunctions_backends
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    for backends in (stepfunctions_backends, stepfunctions_parser_backends):
        for machine in getattr(backends[ACCOUNT][REGION], "state_machines", []):
            machine.executions.clear()


def execution_exists(job_id: str) -> bool:
    return bool(container_module.container().workflows.execution_exists(job_id))


def job(job_id: str) -> JobModel:
    found = records.find(JobModel, job_id)
    assert found is not None
    return found


def new_job(kiln: Kiln, inputs: tuple[dict[str, Any], dict[str, Any]]) -> str:
    recipe, key = inputs
    response = create_job(kiln, recipe["id"], key["id"])
    assert response.status_code == 201, response.body
    return str(response.json_body["id"])


def succeed(kiln: Kiln, job_id: str) -> None:
    kiln.build_events(
        {
            "type": "result",
            "outcome": "success",
            "job_id": job_id,
            "output": {"manifest": {"etag": "e"}, "log_key": f"jobs/{job_id}/build.log"},
        }
    )


def restart() -> list[str]:
    forget_executions()
    return recovery.after_restart(
        container_module.container(), boto3.client("sqs", region_name=REGION)
    )


@pytest.fixture
def inputs(kiln: Kiln) -> tuple[dict[str, Any], dict[str, Any]]:
    kiln.register_host()  # one node, one slot
    return ready_recipe(kiln), public_key(kiln)


def test_an_orphaned_job_is_dispatched_again_keeping_its_slot(
    kiln: Kiln, inputs: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    job_id = new_job(kiln, inputs)
    before = job(job_id)
    assert before.slot and execution_exists(job_id)
    sqs = boto3.client("sqs", region_name=REGION)
    queue = kiln.provisioned.queue_urls[build_queue_name("x86_64")]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"token": "dead", "job": {}}))

    lines = restart()

    assert f"{job_id}: {recovery.REASON} (slot {before.slot})" in lines
    assert f"{build_queue_name('x86_64')}: 1 message(s) purged (their task tokens died)" in lines
    after = job(job_id)
    assert execution_exists(job_id)
    assert after.slot == before.slot and after.status == before.status
    assert after.status_reason == recovery.REASON
    assert after.unfinished == "job" and after.awaiting_node is None
    assert [slot.job_id for slot in capacity.held()] == [job_id]
    assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == []  # the dead token


def test_waiting_jobs_stay_waiting_and_ended_jobs_are_untouched(
    kiln: Kiln, inputs: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    ended = new_job(kiln, inputs)
    succeed(kiln, ended)
    assert job(ended).status == "success"
    running = new_job(kiln, inputs)  # takes the one slot
    waiting = new_job(kiln, inputs)  # waits for it
    ended_before, waiting_before = job(ended), job(waiting)
    assert waiting_before.awaiting_node == "job" and not waiting_before.slot

    lines = restart()

    assert [line.split(":")[0] for line in lines] == [running]
    assert execution_exists(running) and job(running).status_reason == recovery.REASON
    assert not execution_exists(ended) and not execution_exists(waiting)
    assert job(ended).version == ended_before.version  # not even re-saved
    still = job(waiting)
    assert still.version == waiting_before.version
    assert still.awaiting_node == "job" and still.status == "creating" and not still.slot
    assert still.status_reason == waiting_before.status_reason

    succeed(kiln, running)  # the re-dispatched build ends: the waiting job gets the slot
    assert execution_exists(waiting) and job(waiting).slot


def test_a_started_job_without_a_slot_waits_again_and_is_dispatched(
    kiln: Kiln, inputs: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    job_id = new_job(kiln, inputs)
    slot = job(job_id).slot
    assert slot is not None

    def lose_slot(record: JobModel) -> None:
        record.slot = None
        record.status = "building_image"

    update(job_id, lose_slot)
    assert capacity.release(slot, job_id)

    lines = restart()

    assert f"{job_id}: waiting for a build slot again ({recovery.REASON})" in lines
    assert f"{job_id}: dispatched" in lines  # the free slot, at once
    after = job(job_id)
    assert after.slot == slot and after.awaiting_node is None and execution_exists(job_id)
    assert after.status == "creating"  # claimed again from the start
    assert [entry[0] for entry in after.status_history][-1] == "creating"


def test_a_restart_with_nothing_to_recover_does_nothing(kiln: Kiln) -> None:
    assert restart() == []


def test_provisioning_again_keeps_real_upload_events_and_drops_test_events(
    aws: Provisioned,
) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    queue = aws.queue_urls[UPLOAD_EVENTS_QUEUE]
    assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == []  # drained at first
    upload = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"key": "k"}}}]}
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(upload))
    sqs.send_message(QueueUrl=queue, MessageBody="not json: kept, the handler decides")
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"Event": "s3:TestEvent"}))

    provision(REGION, "kiln", BUCKET, resources.Timing())  # a restart: S3 posts a test event

    bodies = []
    for _ in range(3):
        for message in sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=30
        ).get("Messages", []):
            bodies.append(message["Body"])
    assert sorted(bodies) == sorted([json.dumps(upload), "not json: kept, the handler decides"])
