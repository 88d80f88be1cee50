"""Remote build nodes: registration makes a node eligible, heartbeats say what it serves,
deleting drains it, and a job no node serves waits, then fails with a reason."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.conftest import Kiln
from tests.handlers.test_cleanup import scheduled
from tests.ims.helpers import V3, create_job, public_key, ready_recipe

NODES = f"{V3}/remote-build-nodes"


def control(kiln: Kiln, xname: str) -> dict:
    s3 = boto3.client("s3", region_name="us-east-1")
    key = f"control/build-nodes/{xname}.json"
    return json.loads(s3.get_object(Bucket=kiln.provisioned.bucket, Key=key)["Body"].read())


def executions(kiln: Kiln) -> list[str]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    found = sfn.list_executions(stateMachineArn=kiln.provisioned.state_machine_arn)
    return [e["name"] for e in found["executions"]]


def test_register_list_get_and_drain_a_node(kiln: Kiln) -> None:
    created = kiln.call("POST", NODES, {"xname": "x3000c0s1b0n0"}, role="admin")
    assert created.status_code == 201
    assert created.json_body["xname"] == "x3000c0s1b0n0"
    assert created.json_body["status"] == "never_seen"
    assert control(kiln, "x3000c0s1b0n0") == {"registered": True}

    kiln.heartbeat(xname="x3000c0s1b0n0", arch="aarch64", current_job=None)
    node = kiln.call("GET", f"{NODES}/x3000c0s1b0n0", role="admin").json_body
    assert node["arch"] == "aarch64" and node["status"] == "ready"
    assert node["recipe_types"] == ["kiln-debian", "kiln-noop"]
    assert node["job_types"] == ["create", "customize"] and node["last_heartbeat"]
    legacy = kiln.call("GET", "/apis/ims/remote-build-nodes", role="admin").json_body
    assert [n["xname"] for n in legacy] == ["x3000c0s1b0n0"]

    again = kiln.call("POST", NODES, {"xname": "x3000c0s1b0n0"}, role="admin")
    assert again.status_code == 409

    drained = kiln.call("DELETE", f"{NODES}/x3000c0s1b0n0", role="admin")
    assert drained.status_code == 204
    assert control(kiln, "x3000c0s1b0n0") == {"registered": False}
    assert kiln.call("GET", f"{NODES}/x3000c0s1b0n0", role="admin").status_code == 404
    assert kiln.call("GET", NODES, role="admin").json_body == []
    kiln.heartbeat(xname="x3000c0s1b0n0")  # a draining host keeps reporting: still hidden
    assert kiln.call("GET", NODES, role="admin").json_body == []


def test_delete_all_nodes_drains_each(kiln: Kiln) -> None:
    for xname in ("n1", "n2"):
        kiln.call("POST", NODES, {"xname": xname}, role="admin")
    assert kiln.call("DELETE", "/apis/ims/remote-build-nodes", role="admin").status_code == 204
    assert control(kiln, "n1") == control(kiln, "n2") == {"registered": False}


@pytest.mark.parametrize(
    "body", [{}, {"xname": ""}, {"xname": "a b"}, {"xname": "x", "extra": 1}, ["x"]]
)
def test_bad_registration_is_4xx_problem(kiln: Kiln, body: object) -> None:
    response = kiln.call("POST", NODES, body, role="admin")
    assert response.status_code in (400, 422)
    assert response.headers["Content-Type"] == "application/problem+json"
    assert kiln.call("GET", NODES, role="admin").json_body == []


def test_nodes_are_admin_only(kiln: Kiln) -> None:
    assert kiln.call("POST", NODES, {"xname": "n1"}).status_code == 403
    assert kiln.call("DELETE", NODES).status_code == 403


def test_unregistered_host_is_not_eligible(kiln: Kiln) -> None:
    kiln.heartbeat()  # a host that nobody registered
    recipe, key = ready_recipe(kiln), public_key(kiln)
    job = create_job(kiln, recipe["id"], key["id"]).json_body
    assert job["status"] == "creating" and "no registered, healthy" in job["status_reason"]
    assert executions(kiln) == []


def test_a_fleet_enrols_its_hosts_at_first_contact(kiln: Kiln) -> None:
    """KILN_NODE_AUTO_REGISTER (an AWS deployment's fleets): an instance the fleet started is
    registered when first heard of and takes the job that waited for it; one an admin
    deregistered stays drained."""
    kiln.configure(node_auto_register=True)
    recipe, key = ready_recipe(kiln), public_key(kiln)
    job = create_job(kiln, recipe["id"], key["id"]).json_body
    assert job["status"] == "creating" and executions(kiln) == []  # no host yet: it waits

    kiln.heartbeat(xname="i-0abc")  # a new instance's first heartbeat
    assert control(kiln, "i-0abc") == {"registered": True}
    assert kiln.call("GET", f"{NODES}/i-0abc", role="admin").json_body["status"] == "ready"
    assert executions(kiln) == [job["id"]]

    assert kiln.call("DELETE", f"{NODES}/i-0abc", role="admin").status_code == 204
    kiln.heartbeat(xname="i-0abc")
    assert control(kiln, "i-0abc") == {"registered": False}
    assert kiln.call("GET", NODES, role="admin").json_body == []


def test_without_enrolment_a_host_waits_for_an_admin(kiln: Kiln) -> None:
    kiln.heartbeat(xname="i-0def")
    assert kiln.call("GET", f"{NODES}/i-0def", role="admin").status_code == 404


def test_waiting_job_is_dispatched_when_a_serving_node_reports(kiln: Kiln) -> None:
    kiln.register_host(recipe_types=("kiln-debian",))
    recipe, key = ready_recipe(kiln), public_key(kiln)
    job = create_job(kiln, recipe["id"], key["id"]).json_body
    assert job["status"] == "creating"
    assert "recipe type 'kiln-noop' for arch 'x86_64'" in job["status_reason"]
    assert "x86_64/kiln-debian" in job["status_reason"]
    assert executions(kiln) == []

    kiln.register_host(recipe_types=("kiln-noop",), xname="noop-host")
    assert executions(kiln) == [job["id"]]
    shown = kiln.call("GET", f"{V3}/jobs/{job['id']}").json_body
    assert shown["status"] == "creating" and shown["status_reason"] is None
    kiln.heartbeat(recipe_types=("kiln-noop",), xname="noop-host")  # dispatched only once
    assert executions(kiln) == [job["id"]]


def test_waiting_job_fails_after_the_configured_wait(kiln: Kiln) -> None:
    kiln.register_host(arch="aarch64")
    recipe, key = ready_recipe(kiln), public_key(kiln)
    job = create_job(kiln, recipe["id"], key["id"]).json_body
    kiln.client.lambda_.invoke("on_cleanup_schedule", scheduled(kiln))
    assert kiln.call("GET", f"{V3}/jobs/{job['id']}").json_body["status"] == "creating"

    kiln.configure(unserved_wait_seconds=0)
    kiln.client.lambda_.invoke("on_cleanup_schedule", scheduled(kiln))
    ended = kiln.call("GET", f"{V3}/jobs/{job['id']}").json_body
    assert ended["status"] == "error"
    assert "no build node after 0 s" in ended["status_reason"]
    assert "for arch 'x86_64'" in ended["status_reason"]
    assert "aarch64/kiln-noop" in ended["status_reason"]


def test_drained_node_takes_no_new_job(kiln: Kiln) -> None:
    kiln.register_host()
    kiln.call("DELETE", f"{NODES}/test-host", role="admin")
    kiln.heartbeat()
    recipe, key = ready_recipe(kiln), public_key(kiln)
    job = create_job(kiln, recipe["id"], key["id"]).json_body
    assert job["status"] == "creating" and executions(kiln) == []


def test_packer_fails_fast_unless_a_node_advertises_it(kiln: Kiln) -> None:
    kiln.register_host()
    recipe = ready_recipe(
        kiln, body={"name": "p", "recipe_type": "packer", "linux_distribution": "sles15"}
    )
    key = public_key(kiln)
    job = create_job(kiln, recipe["id"], key["id"]).json_body
    assert job["status"] == "error"
    assert "no registered build node advertises recipe type 'packer'" in job["status_reason"]

    kiln.register_host(recipe_types=("packer",), xname="packer-host")
    job = create_job(kiln, recipe["id"], key["id"]).json_body
    assert job["status"] == "creating" and executions(kiln) == [job["id"]]
