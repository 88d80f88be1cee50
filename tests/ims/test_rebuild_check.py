"""Rebuild checks of IMS images over HTTP (docs/reproducibility.md): the API in process on
moto, and a build host's real job run (builders/job_run.py with the kiln-noop backend) taking
the job message the API dispatched, its progress and result fed back as build events."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from builders.backends.base import BuildError
from builders.host_config import HostConfig
from builders.job_run import CreateRun
from builders.report import Reporter
from chalicelib.adapters.models import NodeSlotModel, RecipeModel
from chalicelib.config import BUILD_EVENTS_QUEUE
from chalicelib.domain.builds import capacity, job_records
from chalicelib.domain.ims import rebuild_check_kind
from chalicelib.host_protocol import FailureCode, JobMessage, MediaType
from tests.conftest import Kiln
from tests.ims.helpers import V3, create_job, public_key, put_object, ready_recipe

PROBLEM = "application/problem+json"
REGION = "us-east-1"


class Host:
    """A build host's job run against the in-process moto: it takes the message of the
    execution the API started, builds, and its events reach the API as the queue's would."""

    def __init__(self, kiln: Kiln, work_dir: Path, xname: str) -> None:
        self.kiln, self.xname = kiln, xname
        self.s3, self.sqs = (
            boto3.client("s3", region_name=REGION),
            boto3.client("sqs", region_name=REGION),
        )
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.events = kiln.provisioned.queue_urls[BUILD_EVENTS_QUEUE]
        self.config = HostConfig(
            arch="x86_64",
            xname=xname,
            build_queue_url="",
            events_queue_url=self.events,
            work_dir=work_dir / xname,
            heartbeat_seconds=3600,
            region="us-east-1",
            bucket=kiln.provisioned.bucket,
        )
        self.reporter = Reporter(self.sqs, self.s3, self.sfn, self.events, xname)

    def run(self, job_id: str) -> dict[str, Any]:
        """Build the job; returns its message."""
        message = dispatched(job_id)
        job = JobMessage.from_dict(message)
        result: dict[str, Any] = {"type": "result", "job_id": job_id}
        try:
            output = CreateRun(job, self.reporter, self.s3, self.config, lambda: False).execute()
            result.update(outcome="success", output=output.to_dict())
        except BuildError as exc:
            error = f"{exc.code.wire}: {exc}"
            result.update(outcome="failure", error={"Error": error[:256], "Cause": error})
        self.forward_events()
        self.kiln.build_events(result)
        return message

    def forward_events(self) -> None:
        while True:
            got = self.sqs.receive_message(QueueUrl=self.events, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not got:
                return
            self.kiln.build_events(*(json.loads(m["Body"]) for m in got))
            for message in got:
                self.sqs.delete_message(
                    QueueUrl=self.events, ReceiptHandle=message["ReceiptHandle"]
                )


def dispatched(job_id: str) -> dict[str, Any]:
    """The job message of the build execution the API started for the job."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = next(
        e["executionArn"]
        for machine in sfn.list_state_machines()["stateMachines"]
        for e in sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
        if e["name"] == job_id
    )
    return dict(json.loads(sfn.describe_execution(executionArn=arn)["input"]))


def started(job_id: str) -> bool:
    try:
        dispatched(job_id)
    except StopIteration:
        return False
    return True


@pytest.fixture
def node_a(kiln: Kiln, tmp_path: Path) -> Host:
    kiln.register_host(xname="node-a")
    return Host(kiln, tmp_path, "node-a")


def built_image(kiln: Kiln, host: Host, recipe_yaml: str = "name: noop\n") -> dict[str, Any]:
    """An image Kiln built from a kiln-noop recipe on ``host``."""
    recipe = ready_recipe(kiln, files={"recipe.yaml": recipe_yaml})
    response = create_job(kiln, recipe["id"], public_key(kiln)["id"])
    assert response.status_code == 201, response.json_body
    job_id = response.json_body["id"]
    host.run(job_id)
    job = kiln.call("GET", f"{V3}/jobs/{job_id}").json_body
    assert job["status"] == "success" and job["build_node"] == host.xname, job
    image = kiln.call("GET", f"{V3}/images/{job['resultant_image_id']}").json_body
    assert "reproducibility" not in image  # never checked
    return dict(image)


def request(kiln: Kiln, image_id: str, body: Any = None, tenant: str = "demo") -> Any:
    return kiln.call("POST", f"{V3}/images/{image_id}/rebuild-check", body, tenant=tenant)


def check_of(kiln: Kiln, image_id: str) -> dict[str, Any]:
    answer = kiln.call("GET", f"{V3}/images/{image_id}/rebuild-check")
    assert answer.status_code == 200, answer.json_body
    shown = kiln.call("GET", f"{V3}/images/{image_id}").json_body["reproducibility"]
    assert shown == answer.json_body  # the image shows the same object
    return dict(answer.json_body)


def test_a_noop_image_rebuilt_on_another_node_is_reproducible(
    kiln: Kiln, node_a: Host, tmp_path: Path
) -> None:
    image = built_image(kiln, node_a)
    kiln.register_host(xname="node-b")
    node_b = Host(kiln, tmp_path, "node-b")
    answer = request(kiln, image["id"], {})
    assert answer.status_code == 202, answer.json_body
    pending = answer.json_body
    assert pending["status"] == "pending" and pending["requested"] and pending["job_id"]
    assert pending["original_node"] == "node-a" and pending["result"] is None
    check_id = pending["job_id"]

    message = dispatched(check_id)  # the original's message, plus the comparison
    original = dispatched(pending["original_job_id"])
    for field in ("recipe", "template_dictionary", "source_date_epoch", "arch", "recipe_type"):
        assert message[field] == original[field], field
    assert message["image_root_archive_name"] == original["image_root_archive_name"]
    assert message["use_cache"] is False and message["cache_prefix"] == ""
    assert message["image_id"] != image["id"]  # an unaware host could never overwrite it
    compare_with = message["compare_with"]
    assert compare_with["image_id"] == image["id"] and compare_with["node"] == "node-a"
    assert compare_with["avoid_node"] == "node-a"  # node-b's slot was reserved for it
    assert [a["type"] for a in compare_with["artifacts"]] == [MediaType.ROOTFS_SQUASHFS]

    node_b.run(check_id)
    check = check_of(kiln, image["id"])
    assert check["status"] == "reproducible", check
    assert check["rebuild_node"] == "node-b" and check["original_node"] == "node-a"
    assert check["started"] and check["finished"] and check["reason"] is None
    result = check["result"]
    assert result["reproducible"] is True and result["verdict"] == "reproducible"
    assert result["rebuild_node"] == "node-b" and result["same_node"] is False
    assert [(r["name"], r["identical"]) for r in result["artifacts"]] == [("x.squashfs", True)]
    assert result["summary"].startswith("Rebuilt on node-b; the original was built on node-a.")
    # the check is the image's: IMS's job list does not show it, nor does GET /jobs/{id}
    assert check_id not in [j["id"] for j in kiln.call("GET", f"{V3}/jobs").json_body]
    assert kiln.call("GET", f"{V3}/jobs/{check_id}").status_code == 404
    log = kiln.call("GET", f"{V3}/images/{image['id']}/rebuild-check/log")
    assert log.status_code == 200 and "compare x.squashfs: identical" in log.body.decode()
    listed = kiln.call("GET", f"{V3}/images").json_body
    assert [i.get("reproducibility", {}).get("status") for i in listed] == ["reproducible"]
    # nothing was published for the check
    s3 = boto3.client("s3", region_name=REGION)
    published = s3.list_objects_v2(
        Bucket=kiln.provisioned.bucket, Prefix=f"images/{message['image_id']}/"
    )
    assert published.get("KeyCount", 0) == 0


def test_a_nondeterministic_recipe_is_not_reproducible(kiln: Kiln, node_a: Host) -> None:
    image = built_image(kiln, node_a, "name: noop\nnondeterministic: true\n")
    answer = request(kiln, image["id"])  # no body at all
    assert answer.status_code == 202, answer.json_body
    message = dispatched(answer.json_body["job_id"])
    assert message["compare_with"]["avoid_node"] is None  # the only node: the same one
    node_a.run(answer.json_body["job_id"])
    check = check_of(kiln, image["id"])
    assert check["status"] == "not_reproducible", check
    result = check["result"]
    assert result["reproducible"] is False and result["same_node"] is True
    row = result["artifacts"][0]
    assert row["name"] == "x.squashfs" and row["identical"] is False
    assert row["size"][0] == row["size"][1] and row["first_difference"] is not None
    assert "x.squashfs differs" in result["summary"]
    assert "the node that built the original" in result["summary"]
    assert "x.squashfs" in result["diffoscope"] and result["diffoscope"]["x.squashfs"]
    # a finished check may be asked for again
    again = request(kiln, image["id"], {})
    assert again.status_code == 202 and again.json_body["status"] == "pending"
    assert again.json_body["job_id"] != answer.json_body["job_id"]


def test_a_failing_rebuild_is_an_error_with_its_reason(kiln: Kiln, node_a: Host) -> None:
    image = built_image(kiln, node_a)
    answer = request(kiln, image["id"])
    assert answer.status_code == 202
    message = dispatched(answer.json_body["job_id"])
    recipe = message["recipe"]  # the archive changes under the check: the host refuses it
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=recipe["bucket"], Key=recipe["key"], Body=b"other"
    )
    node_a.run(answer.json_body["job_id"])
    check = check_of(kiln, image["id"])
    assert check["status"] == "error" and check["result"] is None, check
    assert check["reason"].startswith("BuildFailed: the recipe archive changed")
    assert check["finished"]


def test_a_check_whose_job_ended_unserved_shows_that_and_may_be_asked_again(
    kiln: Kiln, node_a: Host
) -> None:
    image = built_image(kiln, node_a)
    first = request(kiln, image["id"]).json_body
    reason = "no build node after 600 s: no registered, healthy build node serves it"
    job_records.finish(first["job_id"], "error", reason, FailureCode.NO_BUILD_NODE)
    check = check_of(kiln, image["id"])
    assert check["status"] == "error" and check["reason"] == reason
    assert request(kiln, image["id"]).status_code == 202


def test_a_busy_other_node_is_waited_for_rather_than_the_original_node(
    kiln: Kiln, node_a: Host, tmp_path: Path
) -> None:
    image = built_image(kiln, node_a)
    kiln.register_host(xname="node-b")
    NodeSlotModel(slot="node-b#0", xname="node-b", job_id="other", created_id="x").save()
    answer = request(kiln, image["id"])
    assert answer.status_code == 202 and answer.json_body["status"] == "pending"
    check_id = answer.json_body["job_id"]
    assert not started(check_id)  # node-a is free, but it built the original
    assert capacity.release("node-b#0", "other")
    kiln.heartbeat(xname="node-b")  # a heartbeat dispatches waiting jobs
    message = dispatched(check_id)
    assert message["compare_with"]["avoid_node"] == "node-a"
    Host(kiln, tmp_path, "node-b").run(check_id)
    assert check_of(kiln, image["id"])["rebuild_node"] == "node-b"


def test_a_waiting_check_whose_recipe_went_meanwhile_ends_in_error(
    kiln: Kiln, node_a: Host
) -> None:
    image = built_image(kiln, node_a)
    kiln.register_host(xname="node-b")
    NodeSlotModel(slot="node-b#0", xname="node-b", job_id="other", created_id="x").save()
    check_id = request(kiln, image["id"]).json_body["job_id"]
    recipe_id = kiln.call("GET", f"{V3}/recipes").json_body[0]["id"]
    RecipeModel.get(recipe_id).delete()  # purged while the check waited for node-b
    capacity.release("node-b#0", "other")
    beat = {"type": "node_heartbeat", "xname": "node-b", "arch": "x86_64", "slots": 1}
    beat |= {"recipe_types": ["kiln-noop"], "job_types": ["create"], "accepting": True}
    kiln.build_events(beat, failing=1)  # the dispatch failed: the event is retried
    check = check_of(kiln, image["id"])
    assert check["status"] == "error" and "recipe" in check["reason"], check
    assert not started(check_id)


def test_refusals(kiln: Kiln, node_a: Host) -> None:
    image = built_image(kiln, node_a)
    path = f"{V3}/images/{image['id']}/rebuild-check"
    # 404: unknown image, another tenant's image, never checked
    for answer in (
        request(kiln, str(uuid.uuid4())),
        request(kiln, image["id"], tenant="beta"),
        kiln.call("GET", path, tenant="beta"),
        kiln.call("GET", path),
        kiln.call("GET", f"{path}/log"),
    ):
        assert answer.status_code == 404, answer.json_body
        assert answer.headers["Content-Type"] == PROBLEM
    # 400: a body that is not an object, or has fields
    bodies: list[Any] = [[], "x", {"node": "node-b"}, "{not json"]
    for body in bodies:
        raw = body if body == "{not json" else json.dumps(body)
        answer = kiln.call("POST", path, raw)
        assert answer.status_code == 400, (body, answer.json_body)
        assert answer.headers["Content-Type"] == PROBLEM
    # 409: an image Kiln did not build
    registered = kiln.call(
        "POST",
        f"{V3}/images",
        {
            "name": "mine",
            "link": {"path": put_object(kiln, "uploads/demo/m.json", b"{}"), "type": "s3"},
        },
    ).json_body
    answer = request(kiln, registered["id"])
    assert answer.status_code == 409 and "not built by Kiln" in answer.json_body["detail"]
    # 409: a check already pending
    assert request(kiln, image["id"]).status_code == 202
    answer = request(kiln, image["id"])
    assert answer.status_code == 409 and "already pending" in answer.json_body["detail"]
    assert answer.headers["Content-Type"] == PROBLEM
    assert (
        kiln.call("GET", f"{V3}/images/{image['id']}").json_body["reproducibility"]["status"]
        == "pending"
    )


def test_an_image_whose_recipe_archive_is_gone_is_409(kiln: Kiln, node_a: Host) -> None:
    image = built_image(kiln, node_a)
    recipe = kiln.call("GET", f"{V3}/recipes").json_body[0]
    bucket, key = recipe["link"]["path"].removeprefix("s3://").split("/", 1)
    boto3.client("s3", region_name=REGION).delete_object(Bucket=bucket, Key=key)
    answer = request(kiln, image["id"])
    assert answer.status_code == 409 and "recipe archive" in answer.json_body["detail"]
    assert "reproducibility" not in kiln.call("GET", f"{V3}/images/{image['id']}").json_body


def test_a_customized_image_is_409(kiln: Kiln, node_a: Host) -> None:
    image = built_image(kiln, node_a)
    key = kiln.call("GET", f"{V3}/public-keys").json_body[0]
    body = {
        "job_type": "customize",
        "artifact_id": image["id"],
        "public_key_id": key["id"],
        "image_root_archive_name": "custom",
    }
    job = kiln.call("POST", f"{V3}/jobs", body).json_body
    kiln.build_events(
        {
            "type": "result",
            "outcome": "success",
            "job_id": job["id"],
            "output": {"manifest": {"etag": "e"}, "log_key": "jobs/x/build.log", "node": "node-a"},
        }
    )
    custom = kiln.call("GET", f"{V3}/jobs/{job['id']}").json_body["resultant_image_id"]
    answer = request(kiln, custom)
    assert answer.status_code == 409 and "ims-customize" in answer.json_body["detail"]


def test_a_long_result_is_cut_to_fit_the_image_record() -> None:
    rows = [{"name": f"f{i}", "identical": False, "pad": "x" * 200} for i in range(400)]
    result = {"verdict": "not_reproducible", "artifacts": rows, "diffoscope": {"f0": "d" * 9000}}
    cut = rebuild_check_kind.bounded(result)
    assert len(json.dumps(cut)) <= rebuild_check_kind.RESULT_MAX
    assert cut["verdict"] == "not_reproducible" and cut["artifacts_cut"] is True
    assert cut["diffoscope"]["f0"].endswith("cut]")
    small = {"verdict": "reproducible", "artifacts": rows[:2], "diffoscope": {}}
    assert rebuild_check_kind.bounded(small) == small
