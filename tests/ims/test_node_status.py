"""Remote build node status (`cray ims remote-build-nodes status list|describe`): IMS's
RemoteBuildNodeStatus objects, field for field, from the nodes' heartbeats; v3 only, admin only,
404 for a node that is not registered."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.conftest import Kiln
from tests.ims.helpers import V3

NODES = f"{V3}/remote-build-nodes"
STATUS = f"{NODES}/status"
#: IMS's fields and their types, exactly
FIELDS = {
    "xname": str,
    "sshStatus": str,
    "podmanStatus": str,
    "nodeArch": str,
    "numCurrentJobs": int,
    "ableToRunJobs": bool,
}


def beat(kiln: Kiln, xname: str, ago: float = 0, **fields: Any) -> None:
    """A heartbeat the host sent ``ago`` seconds ago (its own clock, as hosts send it)."""
    kiln.build_events(
        {
            "type": "node_heartbeat",
            "xname": xname,
            "arch": "x86_64",
            "recipe_types": ["kiln-debian", "kiwi-ng"],
            "job_types": ["create", "customize"],
            "accepting": True,
            "current_job": None,
            "time": time.time() - ago,
            **fields,
        }
    )


def register(kiln: Kiln, xname: str) -> None:
    assert kiln.call("POST", NODES, {"xname": xname}, role="admin").status_code == 201


def statuses(kiln: Kiln) -> dict[str, dict[str, Any]]:
    response = kiln.call("GET", STATUS, role="admin")
    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"] == "application/json"
    assert isinstance(response.json_body, list)
    return {entry["xname"]: entry for entry in response.json_body}


def seconds_in(text: str, pattern: str, low: float, high: float) -> None:
    """``text`` is ``pattern`` with its one number between ``low`` and ``high`` (whole
    seconds; the test's own time passes between heartbeat and answer)."""
    found = re.fullmatch(pattern.replace("N", r"(\d+)"), text)
    assert found, text
    assert int(low) <= int(found.group(1)) <= int(high) + 1, text


def assert_shape(entry: dict[str, Any]) -> None:
    assert set(entry) == set(FIELDS)
    for name, kind in FIELDS.items():
        assert type(entry[name]) is kind, (name, entry[name])


def assert_problem(response: Any, status: int, path: str) -> dict[str, Any]:
    assert response.status_code == status, response.body
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = dict(response.json_body)
    assert set(problem) == {"type", "title", "status", "detail", "instance"}
    assert problem["status"] == status and problem["instance"] == path
    return problem


def test_no_registered_node_is_an_empty_list(kiln: Kiln) -> None:
    beat(kiln, "nobody-registered-me")  # heard from, never registered: not a node of IMS's
    assert statuses(kiln) == {}


def test_list_shows_every_registered_node_as_its_heartbeats_say(kiln: Kiln) -> None:
    start = time.time()
    for xname in ("fresh", "busy", "silent", "never", "closed", "arm", "drained"):
        register(kiln, xname)
    beat(kiln, "fresh", ago=5)
    beat(kiln, "busy", current_job="job-1")
    beat(kiln, "silent", ago=600, current_job="job-2")
    beat(kiln, "closed", accepting=False)
    beat(kiln, "arm", arch="aarch64", recipe_types=[])
    beat(kiln, "drained")
    assert kiln.call("DELETE", f"{NODES}/drained", role="admin").status_code == 204
    beat(kiln, "stranger")  # never registered

    found = statuses(kiln)
    waited = time.time() - start
    assert sorted(found) == ["arm", "busy", "closed", "fresh", "never", "silent"]
    for entry in found.values():
        assert_shape(entry)

    fresh = found["fresh"]
    seconds_in(fresh["sshStatus"], r"Connection established \(heartbeat N s ago\)\.", 5, 5 + waited)
    assert fresh["podmanStatus"] == "Builders present: kiln-debian, kiwi-ng"
    assert (fresh["nodeArch"], fresh["numCurrentJobs"], fresh["ableToRunJobs"]) == (
        "x86_64",
        0,
        True,
    )

    busy = found["busy"]
    assert busy["numCurrentJobs"] == 1 and busy["ableToRunJobs"] is True

    silent = found["silent"]
    pattern = r"Unable to connect to node\. Error: no heartbeat for N s"
    seconds_in(silent["sshStatus"], pattern, 600, 600 + waited)
    assert silent["podmanStatus"] == "Builders last advertised: kiln-debian, kiwi-ng"
    assert silent["nodeArch"] == "x86_64"  # what it said it is stays true
    assert (silent["numCurrentJobs"], silent["ableToRunJobs"]) == (-1, False)

    assert found["never"] == {
        "xname": "never",
        "sshStatus": "Unable to connect to node. Error: never heard from",
        "podmanStatus": "Unknown",
        "nodeArch": "Unknown",
        "numCurrentJobs": -1,
        "ableToRunJobs": False,
    }

    closed = found["closed"]
    assert closed["sshStatus"].startswith("Connection established (heartbeat ")
    assert (closed["numCurrentJobs"], closed["ableToRunJobs"]) == (0, False)

    arm = found["arm"]
    assert (arm["nodeArch"], arm["podmanStatus"]) == ("aarch64", "Builders present: none")


def test_freshness_follows_the_configured_window(kiln: Kiln) -> None:
    start = time.time()
    register(kiln, "slow")
    beat(kiln, "slow", ago=600)
    assert statuses(kiln)["slow"]["ableToRunJobs"] is False
    kiln.configure(node_fresh_seconds=3600)
    entry = statuses(kiln)["slow"]
    pattern = r"Connection established \(heartbeat N s ago\)\."
    seconds_in(entry["sshStatus"], pattern, 600, 600 + time.time() - start)
    assert entry["ableToRunJobs"] is True and entry["numCurrentJobs"] == 0


def test_describe_is_one_status_object(kiln: Kiln) -> None:
    register(kiln, "x3000c0s1b0n0")
    beat(kiln, "x3000c0s1b0n0", current_job="job-1")
    response = kiln.call("GET", f"{STATUS}/x3000c0s1b0n0", role="admin")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    entry = response.json_body
    assert_shape(entry)
    assert entry["xname"] == "x3000c0s1b0n0" and entry["numCurrentJobs"] == 1
    assert entry == statuses(kiln)["x3000c0s1b0n0"]


@pytest.mark.parametrize("xname", ["nope", "x" * 3000])
def test_describe_an_unknown_node_is_ims_404(kiln: Kiln, xname: str) -> None:
    path = f"{STATUS}/{xname}"
    problem = assert_problem(kiln.call("GET", path, role="admin"), 404, path)
    node_404 = kiln.call("GET", f"{NODES}/{xname}", role="admin").json_body
    assert (problem["type"], problem["title"], problem["detail"]) == (
        node_404["type"],
        node_404["title"],
        node_404["detail"],
    )


def test_drained_and_unregistered_nodes_have_no_status(kiln: Kiln) -> None:
    register(kiln, "drained")
    beat(kiln, "drained")
    assert kiln.call("DELETE", f"{NODES}/drained", role="admin").status_code == 204
    beat(kiln, "drained")  # a draining host keeps reporting
    beat(kiln, "stranger")
    for xname in ("drained", "stranger"):
        path = f"{STATUS}/{xname}"
        assert_problem(kiln.call("GET", path, role="admin"), 404, path)
    assert statuses(kiln) == {}


@pytest.mark.parametrize("role", ["user", "worker"])
def test_status_is_admin_only(kiln: Kiln, role: str) -> None:
    register(kiln, "n1")
    for path in (STATUS, f"{STATUS}/n1", f"{STATUS}/nope"):
        problem = assert_problem(kiln.call("GET", path, role=role), 403, path)
        assert "n1" not in problem["detail"]


def test_status_needs_a_token(kiln: Kiln) -> None:
    for path in (STATUS, f"{STATUS}/n1"):
        assert_problem(kiln.call("GET", path, headers={}), 401, path)


def test_status_is_read_only(kiln: Kiln) -> None:
    register(kiln, "n1")
    for method, path in (("DELETE", STATUS), ("POST", STATUS), ("DELETE", f"{STATUS}/n1")):
        response = kiln.call(method, path, {} if method == "POST" else None, role="admin")
        assert_problem(response, 405, path)
        assert response.headers["Allow"] == "GET"
    assert "n1" in statuses(kiln)


def test_unversioned_status_is_the_node_named_status_as_upstream(kiln: Kiln) -> None:
    """Upstream serves status under /v3 only: unversioned, .../status is the node-by-xname
    route, so it is a 404 until a node is named 'status'; under /v3 the list wins."""
    register(kiln, "n1")
    legacy = "/apis/ims/remote-build-nodes/status"
    problem = assert_problem(kiln.call("GET", legacy, role="admin"), 404, legacy)
    assert problem["detail"] == "remote build node status not found"

    register(kiln, "status")
    assert kiln.call("GET", legacy, role="admin").json_body["xname"] == "status"
    assert sorted(statuses(kiln)) == ["n1", "status"]
    assert kiln.call("GET", f"{STATUS}/status", role="admin").json_body["xname"] == "status"
