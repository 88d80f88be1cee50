from __future__ import annotations

import json
import threading
import time
import uuid

import boto3
import pytest

import app as app_module
from infra.local.event_sources import Schedule
from tests.conftest import Kiln
from tests.ims.helpers import V3, create_job, public_key, ready_recipe


def scheduled(kiln: Kiln) -> dict:
    return kiln.client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
    )


def started_job(kiln: Kiln) -> str:
    kiln.register_host()
    recipe, key = ready_recipe(kiln), public_key(kiln)
    return str(create_job(kiln, recipe["id"], key["id"]).json_body["id"])


def status(kiln: Kiln, job_id: str) -> str:
    return str(kiln.call("GET", f"{V3}/jobs/{job_id}").json_body["status"])


def test_schedule_ends_jobs_left_unfinished_past_their_timeout(kiln: Kiln) -> None:
    running = started_job(kiln)
    finished = started_job(kiln)
    failure = {"Error": "BuildFailed: first"}
    kiln.build_events(
        {"type": "result", "outcome": "failure", "job_id": finished, "error": failure}
    )

    kiln.client.lambda_.invoke("on_cleanup_schedule", scheduled(kiln))
    assert status(kiln, running) == "creating"  # the default limit: nothing is stale yet

    kiln.configure(job_stale_seconds=0)
    kiln.client.lambda_.invoke("on_cleanup_schedule", scheduled(kiln))
    kiln.client.lambda_.invoke("on_cleanup_schedule", scheduled(kiln))  # twice: no change
    ended = kiln.call("GET", f"{V3}/jobs/{running}").json_body
    assert ended["status"] == "error" and "abandoned" in ended["status_reason"]
    other = kiln.call("GET", f"{V3}/jobs/{finished}").json_body
    assert other["status_reason"] == "BuildFailed: first"


def test_jobs_a_worker_ended_are_not_cleaned_up(kiln: Kiln) -> None:
    job_id = started_job(kiln)
    moved = kiln.call("PATCH", f"{V3}/jobs/{job_id}", {"status": "success"}, role="worker")
    assert moved.json_body["status"] == "success" and moved.json_body["finished"]
    kiln.configure(job_stale_seconds=0)
    kiln.client.lambda_.invoke("on_cleanup_schedule", scheduled(kiln))
    ended = kiln.call("GET", f"{V3}/jobs/{job_id}").json_body
    assert ended["status"] == "success" and ended["status_reason"] is None


def test_local_schedule_driver_fires_the_cleanup_handler(kiln: Kiln) -> None:
    """infra/local drives the schedule `chalice local` ignores, with a Lambda-shaped event."""
    job_id = started_job(kiln)
    kiln.configure(job_stale_seconds=0)
    stop = threading.Event()
    Schedule(app_module.on_cleanup_schedule, 0.05, stop).start()
    deadline = time.time() + 5
    while time.time() < deadline and status(kiln, job_id) != "error":
        time.sleep(0.05)
    stop.set()
    assert status(kiln, job_id) == "error"


def run_cleanup(kiln: Kiln) -> dict[str, list[str]]:
    report = kiln.client.lambda_.invoke("on_cleanup_schedule", scheduled(kiln)).payload
    assert not [line for lines in report.values() for line in lines if "failed" in line], report
    return dict(report)


def s3_keys(kiln: Kiln, prefix: str = "") -> set[str]:
    s3 = boto3.client("s3", region_name="us-east-1")
    listed = s3.list_objects_v2(Bucket=kiln.provisioned.bucket, Prefix=prefix)
    return {item["Key"] for item in listed.get("Contents", [])}


def test_deleted_records_past_retention_are_purged_with_artifacts(kiln: Kiln) -> None:
    recipe = ready_recipe(kiln)
    kiln.call("DELETE", f"{V3}/recipes/{recipe['id']}")
    run_cleanup(kiln)
    assert kiln.call("GET", f"{V3}/deleted/recipes/{recipe['id']}").status_code == 200

    kiln.configure(deleted_retention_seconds=0)
    report = run_cleanup(kiln)
    assert report["purged_deleted"] == [f"recipe {recipe['id']}"]
    assert kiln.call("GET", f"{V3}/deleted/recipes/{recipe['id']}").status_code == 404
    assert "uploads/demo/noop.tar.gz" not in s3_keys(kiln)


def test_uploads_no_record_owns_are_removed_after_the_grace_period(kiln: Kiln) -> None:
    recipe = ready_recipe(kiln)
    s3 = boto3.client("s3", region_name="us-east-1")
    owned = {f"recipes/{recipe['id']}/recipe.tar.gz"}
    orphans = {
        f"recipes/{uuid.uuid4()}/recipe.tar.gz",
        f"images/{uuid.uuid4()}/rootfs.squashfs",
        f"jobs/{uuid.uuid4()}/build.log",
        f"control/jobs/{uuid.uuid4()}/cancel",
    }
    for key in owned | orphans:
        s3.put_object(Bucket=kiln.provisioned.bucket, Key=key, Body=b"x")
    assert run_cleanup(kiln)["removed_orphans"] == []

    kiln.configure(orphan_grace_seconds=0)
    assert set(run_cleanup(kiln)["removed_orphans"]) == orphans
    assert owned <= s3_keys(kiln) and not orphans & s3_keys(kiln)


def test_a_running_builds_uploads_are_not_orphans(kiln: Kiln) -> None:
    job_id = started_job(kiln)
    from chalicelib.adapters.models import JobModel

    planned = JobModel.get(job_id).planned_image_id
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=kiln.provisioned.bucket, Key=f"images/{planned}/part", Body=b"x")
    kiln.configure(orphan_grace_seconds=0)
    assert run_cleanup(kiln)["removed_orphans"] == []


def test_node_control_objects_follow_the_records(kiln: Kiln) -> None:
    kiln.register_host()
    s3 = boto3.client("s3", region_name="us-east-1")
    key = "control/build-nodes/test-host.json"
    s3.delete_object(Bucket=kiln.provisioned.bucket, Key=key)  # a lost write
    assert run_cleanup(kiln)["node_controls_fixed"] == ["test-host"]
    body = s3.get_object(Bucket=kiln.provisioned.bucket, Key=key)["Body"].read()
    assert json.loads(body) == {"registered": True}
    assert run_cleanup(kiln)["node_controls_fixed"] == []


def test_two_runs_at_once_finish_cleanly(kiln: Kiln) -> None:
    """Both runs succeed and the end state is what one run makes. (That a job is ended by
    exactly one run rests on DynamoDB's atomic conditional write, which in-process moto does
    not give threads, so the reports themselves may both claim a job.)"""
    jobs = [started_job(kiln) for _ in range(3)]
    recipe = ready_recipe(kiln)
    kiln.call("DELETE", f"{V3}/recipes/{recipe['id']}")
    kiln.configure(job_stale_seconds=0, deleted_retention_seconds=0)
    reports: list[dict[str, list[str]]] = []
    threads = [threading.Thread(target=lambda: reports.append(run_cleanup(kiln))) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reports) == 2
    ended = {line.split(":")[0] for r in reports for line in r["ended_jobs"]}
    assert ended == set(jobs)
    assert all(status(kiln, job_id) == "error" for job_id in jobs)
    assert kiln.call("GET", f"{V3}/deleted/recipes/{recipe['id']}").status_code == 404


def _emitted(out: str, name: str) -> dict[str, list[float]]:
    """Each EMF line's ``name`` values by its ``arch`` dimension."""
    found = {}
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blob = json.loads(line)
            if name in blob:
                found[blob["arch"]] = blob[name]
    return found


def test_schedule_reports_jobs_awaiting_a_node_per_arch(
    kiln: Kiln, capsys: pytest.CaptureFixture[str]
) -> None:
    """The scaling signal of the AWS build fleets: jobs no node serves yet, per arch, zeros too
    (queue depth cannot be it: waiting jobs are kept out of the build queues)."""
    recipe, key = ready_recipe(kiln), public_key(kiln)
    for _ in range(2):  # no host registered: both wait for a node
        create_job(kiln, recipe["id"], key["id"])
    capsys.readouterr()
    kiln.client.lambda_.invoke("on_cleanup_schedule", scheduled(kiln))
    emitted = _emitted(capsys.readouterr().out, "JobsAwaitingNode")
    assert emitted == {"x86_64": [2.0], "aarch64": [0.0]}

    kiln.register_host()  # one node, one slot: one job goes, the other still needs capacity
    kiln.client.lambda_.invoke("on_cleanup_schedule", scheduled(kiln))
    emitted = _emitted(capsys.readouterr().out, "JobsAwaitingNode")
    assert emitted == {"x86_64": [1.0], "aarch64": [0.0]}
