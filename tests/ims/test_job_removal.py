"""DELETE of jobs: finished ones go, unfinished ones are cancelled; DELETE /jobs filters."""

from __future__ import annotations

import boto3
import pytest

from tests.conftest import Kiln
from tests.ims.helpers import V3, create_job, public_key, ready_recipe


@pytest.fixture
def inputs(kiln: Kiln) -> tuple[dict, dict]:
    kiln.register_host()
    return ready_recipe(kiln), public_key(kiln)


def new_job(kiln: Kiln, inputs: tuple[dict, dict], tenant: str = "demo") -> str:
    recipe, key = inputs
    if tenant != "demo":
        recipe, key = ready_recipe(kiln, tenant=tenant), public_key(kiln, tenant=tenant)
    return str(create_job(kiln, recipe["id"], key["id"], tenant=tenant).json_body["id"])


def fail(kiln: Kiln, job_id: str) -> None:
    kiln.build_events(
        {"type": "result", "outcome": "failure", "job_id": job_id, "error": {"Error": "boom"}}
    )


def objects(kiln: Kiln, prefix: str) -> list[str]:
    s3 = boto3.client("s3", region_name="us-east-1")
    found = s3.list_objects_v2(Bucket=kiln.provisioned.bucket, Prefix=prefix)
    return [item["Key"] for item in found.get("Contents", [])]


def test_delete_finished_job_removes_record_and_log(kiln: Kiln, inputs) -> None:
    job_id = new_job(kiln, inputs)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=kiln.provisioned.bucket, Key=f"jobs/{job_id}/build.log", Body=b"log")
    fail(kiln, job_id)
    assert kiln.call("DELETE", f"{V3}/jobs/{job_id}").status_code == 204
    assert kiln.call("GET", f"{V3}/jobs/{job_id}").status_code == 404
    assert objects(kiln, f"jobs/{job_id}/") == []
    assert kiln.call("DELETE", f"{V3}/jobs/{job_id}").status_code == 404


def test_delete_running_job_cancels_it(kiln: Kiln, inputs) -> None:
    job_id = new_job(kiln, inputs)
    kiln.build_events(
        {"type": "progress", "job_id": job_id, "status": "building_image", "node": "test-host"}
    )
    assert kiln.call("DELETE", f"{V3}/jobs/{job_id}").status_code == 204
    job = kiln.call("GET", f"{V3}/jobs/{job_id}").json_body
    assert job["status"] == "error" and job["status_reason"].startswith("cancelled")
    assert objects(kiln, f"control/jobs/{job_id}/") == [f"control/jobs/{job_id}/cancel"]

    kiln.build_events(  # the host stops and answers with a failure: nothing changes
        {
            "type": "result",
            "outcome": "failure",
            "job_id": job_id,
            "error": {"Error": "Cancelled: the job was deleted"},
        }
    )
    assert kiln.call("GET", f"{V3}/jobs/{job_id}").json_body == job
    assert kiln.call("DELETE", f"{V3}/jobs/{job_id}").status_code == 204  # now it goes
    assert kiln.call("GET", f"{V3}/jobs/{job_id}").status_code == 404
    assert objects(kiln, f"control/jobs/{job_id}/") == []


def test_delete_all_with_filters(kiln: Kiln, inputs) -> None:
    failed, running = new_job(kiln, inputs), new_job(kiln, inputs)
    theirs = new_job(kiln, inputs, tenant="other")
    fail(kiln, failed)

    assert kiln.call("DELETE", f"{V3}/jobs?status=error&age=1d").status_code == 204
    remaining = {j["id"] for j in kiln.call("GET", f"{V3}/jobs").json_body}
    assert remaining == {failed, running}  # nothing is a day old

    assert kiln.call("DELETE", f"{V3}/jobs?status=success&status=error").status_code == 204
    remaining = {j["id"] for j in kiln.call("GET", f"{V3}/jobs").json_body}
    assert remaining == {running}

    assert kiln.call("DELETE", f"{V3}/jobs?job_type=customize").status_code == 204
    assert kiln.call("GET", f"{V3}/jobs/{running}").json_body["status"] == "creating"

    assert kiln.call("DELETE", f"{V3}/jobs?job_type=create&age=0s").status_code == 204
    assert kiln.call("GET", f"{V3}/jobs/{running}").json_body["status"] == "error"  # cancelled
    assert kiln.call("GET", f"{V3}/jobs/{theirs}", tenant="other").json_body["status"] == (
        "creating"
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=exploded", "status"),
        ("job_type=rebuild", "job_type"),
        ("age=yesterday", "age"),
        ("age=6", "age"),
        ("age=-1d", "age"),
    ],
)
def test_delete_all_with_bad_filters_is_422_and_deletes_nothing(
    kiln: Kiln, inputs, query: str, field: str
) -> None:
    job_id = new_job(kiln, inputs)
    fail(kiln, job_id)
    response = kiln.call("DELETE", f"{V3}/jobs?{query}")
    assert response.status_code == 422 and field in response.json_body["errors"]
    assert kiln.call("GET", f"{V3}/jobs/{job_id}").status_code == 200
