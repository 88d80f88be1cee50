from __future__ import annotations

import json

import boto3
import pytest

from tests.conftest import Kiln
from tests.ims.helpers import NOOP_RECIPE, V3, public_key, put_object, ready_recipe


def job_body(recipe: dict, key: dict, **extra: object) -> dict:
    return {
        "job_type": "create",
        "artifact_id": recipe["id"],
        "public_key_id": key["id"],
        "image_root_archive_name": "my-image",
        **extra,
    }


@pytest.fixture
def ready(kiln: Kiln) -> tuple[dict, dict]:
    kiln.register_host()
    return ready_recipe(kiln), public_key(kiln)


def test_create_job_dispatches_an_execution_named_by_the_job(kiln: Kiln, ready) -> None:
    recipe, key = ready
    response = kiln.call("POST", f"{V3}/jobs", job_body(recipe, key))
    assert response.status_code == 201, response.json_body
    job = response.json_body
    assert job["status"] == "creating" and job["arch"] == "x86_64"
    assert job["resultant_image_id"] is None and job["kernel_file_name"] == "vmlinuz"
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = kiln.provisioned.state_machine_arn.replace(":stateMachine:", ":execution:")
    execution = sfn.describe_execution(executionArn=f"{arn}:{job['id']}")
    build_input = json.loads(execution["input"])
    assert build_input["job_id"] == job["id"] and build_input["recipe_type"] == "kiln-noop"
    assert build_input["recipe"]["sha256"] == recipe["archive"]["sha256"]
    for prefix in ("/apis/ims/v3", "/apis/ims", "/apis/ims/v2"):
        assert kiln.call("GET", f"{prefix}/jobs/{job['id']}").json_body["id"] == job["id"]
        assert [j["id"] for j in kiln.call("GET", f"{prefix}/jobs").json_body] == [job["id"]]


def test_progress_and_result_events_walk_the_job_to_success(kiln: Kiln, ready) -> None:
    recipe, key = ready
    job = kiln.call("POST", f"{V3}/jobs", job_body(recipe, key)).json_body
    seen = []
    for status in ("fetching_recipe", "waiting_for_repos", "building_image"):
        kiln.build_events(
            {"type": "progress", "job_id": job["id"], "status": status, "node": "test-host"}
        )
        seen.append(kiln.call("GET", f"{V3}/jobs/{job['id']}").json_body["status"])
    assert seen == ["fetching_recipe", "waiting_for_repos", "building_image"]
    result = {
        "type": "result",
        "outcome": "success",
        "job_id": job["id"],
        "output": {
            "manifest": {"etag": "abc"},
            "log_key": "jobs/x/build.log",
            "build_seconds": 3.5,
        },
    }
    kiln.build_events(result)
    kiln.build_events(result)  # a duplicate result changes nothing
    done = kiln.call("GET", f"{V3}/jobs/{job['id']}").json_body
    assert done["status"] == "success" and done["build_node"] == "test-host"
    image = kiln.call("GET", f"{V3}/images/{done['resultant_image_id']}").json_body
    assert image["name"] == "my-image" and image["arch"] == "x86_64"
    assert image["link"]["path"].endswith(f"images/{image['id']}/manifest.json")
    assert len(kiln.call("GET", f"{V3}/images").json_body) == 1
    # a late progress report cannot move a finished job
    kiln.build_events({"type": "progress", "job_id": job["id"], "status": "building_image"})
    assert kiln.call("GET", f"{V3}/jobs/{job['id']}").json_body["status"] == "success"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("BuildFailed: E: Unable to locate package nope", "Unable to locate package nope"),
        ("States.Timeout", "went silent"),
        ("States.HeartbeatTimeout", "went silent"),
    ],
)
def test_failure_result_ends_in_error_with_reason(
    kiln: Kiln, ready, error: str, reason: str
) -> None:
    recipe, key = ready
    job = kiln.call("POST", f"{V3}/jobs", job_body(recipe, key)).json_body
    failure = {"type": "result", "outcome": "failure", "job_id": job["id"]}
    kiln.build_events({**failure, "error": {"Error": error, "Cause": ""}})
    done = kiln.call("GET", f"{V3}/jobs/{job['id']}").json_body
    assert done["status"] == "error" and reason in done["status_reason"]
    assert done["resultant_image_id"] is None


def test_job_on_recipe_without_archive_is_422(kiln: Kiln, ready) -> None:
    _recipe, key = ready
    bare = kiln.call("POST", f"{V3}/recipes", NOOP_RECIPE).json_body
    response = kiln.call("POST", f"{V3}/jobs", job_body(bare, key))
    assert response.status_code == 422
    assert "awaiting_upload" in response.json_body["detail"]
    assert kiln.call("GET", f"{V3}/jobs").json_body == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"job_type": "rebuild"}, "job_type"),
        ({"artifact_id": "not-a-uuid"}, "artifact_id"),
        ({"artifact_id": "127ee397-1a4d-417f-8db5-3816609c6309"}, "artifact_id"),
        ({"public_key_id": "127ee397-1a4d-417f-8db5-3816609c6309"}, "public_key_id"),
        ({"image_root_archive_name": ""}, "image_root_archive_name"),
        ({"build_env_size": 0}, "build_env_size"),
        ({"enable_debug": "yes"}, "enable_debug"),
        ({"job_type": "customize"}, "artifact_id"),  # a recipe id is not an image
        ({"ssh_containers": [{"name": "a"}]}, "ssh_containers"),
        ({"ssh_containers": [{"name": "a", "jail": 1}]}, "ssh_containers"),
        ({"ssh_containers": [{"name": "", "jail": True}]}, "ssh_containers"),
        ({"ssh_containers": [{"name": "a", "jail": True}] * 2}, "ssh_containers"),
        ({"ssh_containers": "customize"}, "ssh_containers"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_job_is_422(kiln: Kiln, ready, change: dict, field: str) -> None:
    recipe, key = ready
    response = kiln.call("POST", f"{V3}/jobs", {**job_body(recipe, key), **change})
    assert response.status_code == 422
    assert field in response.json_body["errors"]
    assert kiln.call("GET", f"{V3}/jobs").json_body == []


def test_missing_job_fields_and_empty_body(kiln: Kiln) -> None:
    assert kiln.call("POST", f"{V3}/jobs", None).status_code == 400
    response = kiln.call("POST", f"{V3}/jobs", {"job_type": "create"})
    assert response.status_code == 422
    assert {"artifact_id", "public_key_id", "image_root_archive_name"} <= set(
        response.json_body["errors"]
    )


def test_another_tenants_recipe_or_key_cannot_be_used(kiln: Kiln, ready) -> None:
    recipe, key = ready
    other_key = public_key(kiln, tenant="other")
    assert kiln.call("POST", f"{V3}/jobs", job_body(recipe, other_key)).status_code == 422
    assert kiln.call("POST", f"{V3}/jobs", job_body(recipe, key), tenant="other").status_code == 422


def test_jobs_are_tenant_scoped(kiln: Kiln, ready) -> None:
    recipe, key = ready
    job = kiln.call("POST", f"{V3}/jobs", job_body(recipe, key)).json_body
    assert kiln.call("GET", f"{V3}/jobs/{job['id']}", tenant="other").status_code == 404
    assert kiln.call("GET", f"{V3}/jobs", tenant="other").json_body == []
    assert len(kiln.call("GET", f"{V3}/jobs", role="admin", tenant="ops").json_body) == 1


def test_patch_job_is_for_the_worker_role_only(kiln: Kiln, ready) -> None:
    recipe, key = ready
    job = kiln.call("POST", f"{V3}/jobs", job_body(recipe, key)).json_body
    path = f"{V3}/jobs/{job['id']}"
    assert kiln.call("PATCH", path, {"status": "fetching_recipe"}).status_code == 403
    assert kiln.call("PATCH", path, {"status": "fetching_recipe"}, role="admin").status_code == 403
    moved = kiln.call("PATCH", path, {"status": "fetching_recipe"}, role="worker")
    assert moved.status_code == 200 and moved.json_body["status"] == "fetching_recipe"
    assert kiln.call("PATCH", path, {"status": "creating"}, role="worker").status_code == 422
    assert kiln.call("PATCH", path, {"status": "done"}, role="worker").status_code == 422
    assert kiln.call("PATCH", path, None, role="worker").status_code == 400
    unknown = f"{V3}/jobs/d77ef3de-5400-482e-a579-88114b8bf2d2"
    assert kiln.call("PATCH", unknown, {"status": "error"}, role="worker").status_code == 404


def test_unknown_job_is_404(kiln: Kiln) -> None:
    response = kiln.call("GET", f"{V3}/jobs/d77ef3de-5400-482e-a579-88114b8bf2d2")
    assert response.status_code == 404 and response.json_body["status"] == 404
    assert response.json_body["instance"] == f"{V3}/jobs/d77ef3de-5400-482e-a579-88114b8bf2d2"


def test_build_log_is_served_once_the_host_wrote_it(kiln: Kiln, ready) -> None:
    recipe, key = ready
    job = kiln.call("POST", f"{V3}/jobs", job_body(recipe, key)).json_body
    missing = kiln.call("GET", f"{V3}/jobs/{job['id']}/log")
    assert missing.status_code == 404 and "no build log yet" in missing.json_body["detail"]
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = kiln.provisioned.state_machine_arn.replace(":stateMachine:", ":execution:")
    log_key = json.loads(sfn.describe_execution(executionArn=f"{arn}:{job['id']}")["input"])[
        "log_key"
    ]
    put_object(kiln, log_key, b"E: Unable to locate package nope\n")
    log = kiln.call("GET", f"{V3}/jobs/{job['id']}/log")
    assert log.status_code == 200 and log.headers["Content-Type"] == "text/plain"
    assert log.body == b"E: Unable to locate package nope\n"
    assert kiln.call("GET", f"{V3}/jobs/{job['id']}/log", tenant="other").status_code == 404


def test_a_malformed_build_event_fails_alone_and_the_rest_are_handled(kiln: Kiln, ready) -> None:
    recipe, key = ready
    job = kiln.call("POST", f"{V3}/jobs", job_body(recipe, key)).json_body
    kiln.build_events(
        {"type": "node_heartbeat"},  # no xname
        {"type": "progress", "job_id": job["id"], "status": "fetching_recipe"},
        failing=1,
    )
    assert kiln.call("GET", f"{V3}/jobs/{job['id']}").json_body["status"] == "fetching_recipe"


def test_a_build_that_cannot_start_leaves_no_job_claiming_to_run(
    kiln: Kiln, ready, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib import container
    from chalicelib.adapters.workflows import Workflows

    def refuse(self: Workflows, job_id: str, build_input: dict) -> str:
        raise RuntimeError("Step Functions is unreachable")

    monkeypatch.setattr(Workflows, "start_build", refuse)
    container.container().__dict__.pop("workflows", None)
    recipe, key = ready
    response = kiln.call("POST", f"{V3}/jobs", job_body(recipe, key))
    assert response.status_code == 500 and response.json_body["status"] == 500
    (job,) = kiln.call("GET", f"{V3}/jobs").json_body
    assert job["status"] == "error" and "could not be started" in job["status_reason"]


def test_results_are_logged_with_the_job_id_and_counted(
    kiln: Kiln, ready, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from chalicelib import observability

    recipe, key = ready
    job = kiln.call("POST", f"{V3}/jobs", job_body(recipe, key)).json_body
    result = {
        "type": "result",
        "outcome": "success",
        "job_id": job["id"],
        "output": {"manifest": {"etag": "e"}, "build_seconds": 42.5},
    }
    kiln.build_events(result)
    assert observability.logger().get_correlation_id() == job["id"]
    assert any(r.getMessage() == "build event" for r in caplog.records)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    metrics = {
        name: line[name]
        for line in lines
        if "_aws" in line
        for name in ("JobsStarted", "JobsSucceeded", "BuildSeconds")
        if name in line
    }
    assert metrics["JobsStarted"] in (1.0, [1.0])
    assert metrics["JobsSucceeded"] in (1.0, [1.0]) and metrics["BuildSeconds"] in (42.5, [42.5])


def test_build_log_shows_what_the_host_wrote_so_far_while_it_builds(kiln: Kiln, ready) -> None:
    recipe, key = ready
    job = kiln.call("POST", f"{V3}/jobs", job_body(recipe, key)).json_body
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = kiln.provisioned.state_machine_arn.replace(":stateMachine:", ":execution:")
    message = json.loads(sfn.describe_execution(executionArn=f"{arn}:{job['id']}")["input"])
    put_object(kiln, f"{message['log_chunk_prefix']}000000.log", b"I: fetching\n")
    put_object(kiln, f"{message['log_chunk_prefix']}000001.log", b"I: unpacking\n")
    log = kiln.call("GET", f"{V3}/jobs/{job['id']}/log")
    assert log.status_code == 200 and log.body == b"I: fetching\nI: unpacking\n"
