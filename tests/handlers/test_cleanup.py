from __future__ import annotations

import dataclasses

from chalicelib import container
from tests.conftest import Kiln
from tests.ims.helpers import V3, public_key, ready_recipe


def scheduled(kiln: Kiln) -> dict:
    return kiln.client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
    )


def test_schedule_ends_jobs_left_unfinished_past_their_timeout(kiln: Kiln) -> None:
    kiln.register_host()
    recipe, key = ready_recipe(kiln), public_key(kiln)
    body = {
        "job_type": "create",
        "artifact_id": recipe["id"],
        "public_key_id": key["id"],
        "image_root_archive_name": "x",
    }
    running = kiln.call("POST", f"{V3}/jobs", body).json_body
    finished = kiln.call("POST", f"{V3}/jobs", body).json_body
    kiln.build_events(
        {
            "type": "result",
            "outcome": "failure",
            "job_id": finished["id"],
            "error": {"Error": "BuildFailed: first"},
        }
    )

    kiln.client.lambda_.invoke(
        "on_cleanup_schedule", scheduled(kiln)
    )  # default limit: nothing is stale
    assert kiln.call("GET", f"{V3}/jobs/{running['id']}").json_body["status"] == "creating"

    box = container.container()
    container.use(container.Container(dataclasses.replace(box.settings, job_stale_seconds=0)))
    kiln.client.lambda_.invoke("on_cleanup_schedule", scheduled(kiln))
    kiln.client.lambda_.invoke(
        "on_cleanup_schedule", scheduled(kiln)
    )  # a second run changes nothing
    ended = kiln.call("GET", f"{V3}/jobs/{running['id']}").json_body
    assert ended["status"] == "error" and "abandoned" in ended["status_reason"]
    other = kiln.call("GET", f"{V3}/jobs/{finished['id']}").json_body
    assert other["status_reason"] == "BuildFailed: first"


def test_local_schedule_driver_fires_the_cleanup_handler(kiln: Kiln) -> None:
    """infra/local drives the schedule `chalice local` ignores, with a Lambda-shaped event."""
    import threading
    import time

    import app as app_module
    from infra.local.event_sources import Schedule

    kiln.register_host()
    recipe, key = ready_recipe(kiln), public_key(kiln)
    body = {
        "job_type": "create",
        "artifact_id": recipe["id"],
        "public_key_id": key["id"],
        "image_root_archive_name": "x",
    }
    job = kiln.call("POST", f"{V3}/jobs", body).json_body
    box = container.container()
    container.use(container.Container(dataclasses.replace(box.settings, job_stale_seconds=0)))
    stop = threading.Event()
    Schedule(app_module.on_cleanup_schedule, 0.05, stop).start()
    deadline = time.time() + 5
    while time.time() < deadline:
        if kiln.call("GET", f"{V3}/jobs/{job['id']}").json_body["status"] == "error":
            break
        time.sleep(0.05)
    stop.set()
    assert kiln.call("GET", f"{V3}/jobs/{job['id']}").json_body["status"] == "error"
