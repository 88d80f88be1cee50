"""Dispatch never double-books a node: ten creates at once, over HTTP on Kiln's own front (many
request threads), against one registered node with one slot. One job is dispatched; nine wait
in Kiln (never in a build queue, where their heartbeat clocks would run); each result hands
the slot to the oldest waiting job, and all ten succeed in turn."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from tests.conftest import REGION
from tests.ims.helpers import V3, public_key, ready_recipe
from tests.served import Served, served_kiln


@pytest.fixture
def served(signing_keys: tuple[bytes, str]) -> Iterator[Served]:
    with served_kiln(signing_keys) as running:
        yield running


def _executions(served: Served) -> list[str]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = served.kiln.provisioned.state_machine_arn
    return [e["name"] for e in sfn.list_executions(stateMachineArn=arn)["executions"]]


def _jobs(served: Served, ids: list[str]) -> dict[str, dict[str, Any]]:
    return {job_id: served.call("GET", f"{V3}/jobs/{job_id}").json() for job_id in ids}


def _job_body(served: Served) -> dict[str, Any]:
    """A create job on a ready kiln-noop recipe of tenant demo."""
    recipe, key = ready_recipe(served.kiln), public_key(served.kiln)
    return {
        "job_type": "create",
        "artifact_id": recipe["id"],
        "public_key_id": key["id"],
        "image_root_archive_name": "x",
    }


def _succeed(served: Served, job_id: str) -> None:
    served.kiln.build_events(
        {
            "type": "result",
            "outcome": "success",
            "job_id": job_id,
            "output": {"manifest": {"etag": "e"}, "log_key": f"jobs/{job_id}/build.log"},
        }
    )


def test_ten_concurrent_creates_share_one_slot_in_turn(served: Served) -> None:
    kiln = served.kiln
    kiln.register_host()  # one node; its heartbeat names no slots: one
    body = _job_body(served)
    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(lambda _: served.call("POST", f"{V3}/jobs", body), range(10)))
    assert [r.status_code for r in responses] == [201] * 10, [r.text for r in responses]
    ids = [r.json()["id"] for r in responses]

    finished: list[str] = []
    for turn in range(10):
        jobs = _jobs(served, ids)
        started = set(_executions(served))
        running = [i for i in ids if i in started and jobs[i]["status"] == "creating"]
        waiting = [i for i in ids if i not in started]
        assert len(running) == 1, f"turn {turn}: {len(running)} jobs hold the one slot"
        assert len(waiting) == 9 - turn
        for job_id in waiting:
            assert jobs[job_id]["status"] == "creating"
            assert jobs[job_id]["status_reason"].startswith("waiting: every build node"), jobs[
                job_id
            ]["status_reason"]
        _succeed(served, running[0])
        finished.append(running[0])

    jobs = _jobs(served, ids)
    assert sorted(finished) == sorted(ids)
    assert all(job["status"] == "success" for job in jobs.values())
    assert len(set(_executions(served))) == 10


def test_a_cancelled_job_gives_its_slot_to_the_next(served: Served) -> None:
    kiln = served.kiln
    kiln.register_host()
    body = _job_body(served)
    first = served.call("POST", f"{V3}/jobs", body).json()["id"]
    second = served.call("POST", f"{V3}/jobs", body).json()["id"]
    assert _executions(served) == [first]
    assert served.call("DELETE", f"{V3}/jobs/{first}").status_code == 204
    kiln.heartbeat()  # the node's next heartbeat dispatches what waits
    assert sorted(_executions(served)) == sorted([first, second])
