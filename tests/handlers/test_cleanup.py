from __future__ import annotations

import threading
import time

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
