"""What the cleanup schedule does for the Cachito face, driven as the schedule fires it:
requests past their lifetime go stale (bundle, package data and logs removed; download 400,
logs 410; stale is final), and the shared dependency cache is kept within its age and size."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.cachito import helpers as h
from tests.cachito.helpers import V1
from tests.conftest import Kiln
from tests.handlers.test_cleanup import scheduled

CACHE = "cachito-cache/"


def run_schedule(kiln: Kiln) -> dict[str, list[str]]:
    response = kiln.client.lambda_.invoke("on_cleanup_schedule", scheduled(kiln))
    return dict(response.payload)


def download(kiln: Kiln, request_id: int) -> Any:
    """GET the bundle as a client does (Chalice answers binary bodies to an Accept for them)."""
    headers = {**kiln.headers(), "Accept": "application/gzip"}
    return kiln.call("GET", f"{V1}/requests/{request_id}/download", headers=headers)


def objects(kiln: Kiln, prefix: str) -> list[str]:
    listed = h.s3().list_objects_v2(Bucket=kiln.provisioned.bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_a_complete_request_goes_stale_after_its_lifetime_and_keeps_nothing(kiln: Kiln) -> None:
    kiln.register_host(job_types=("create", "cachito"))
    done = h.create(kiln)["id"]
    h.complete(kiln, done)
    assert download(kiln, done).status_code == 200
    prefix = f"cachito/requests/{done}/"
    assert objects(kiln, prefix)

    report = run_schedule(kiln)  # default lifetimes: nothing is old enough
    assert report["cachito_stale_requests"] == []
    kiln.configure(cachito_stale_seconds=0)
    report = run_schedule(kiln)
    assert report["cachito_stale_requests"] == [f"{done}: stale (was complete)"]

    request = kiln.call("GET", f"{V1}/requests/{done}").json_body
    assert (request["state"], request["state_reason"]) == ("stale", "The request has expired")
    assert request["state_history"][0]["state"] == "stale"
    assert objects(kiln, prefix) == []
    refused = download(kiln, done)
    assert refused.status_code == 400
    assert refused.json_body == {
        "error": 'The request must be in the "complete" state before downloading the archive'
    }
    logs = kiln.call("GET", f"{V1}/requests/{done}/logs")
    assert logs.status_code == 410
    assert logs.json_body == {"error": f"The logs for the Cachito request {done} no longer exist"}
    manifest = kiln.call("GET", f"{V1}/requests/{done}/content-manifest").json_body
    assert manifest["image_contents"] == []

    assert run_schedule(kiln)["cachito_stale_requests"] == []  # stale is final: once
    late = h.record(done)
    assert late.state == "stale" and late.live_state is None


def test_failed_requests_live_longer_than_complete_ones(kiln: Kiln) -> None:
    kiln.register_host(job_types=("create", "cachito"))
    failed = h.create(kiln)["id"]
    h.fail(kiln, failed, "BuildFailed: InvalidRepoStructure: no go.mod")
    running = h.create(kiln, ref="b" * 40)["id"]
    kiln.configure(cachito_stale_seconds=0, cachito_failed_stale_seconds=3600)
    report = run_schedule(kiln)
    assert report["cachito_stale_requests"] == [f"{running}: stale (was in_progress)"]
    assert kiln.call("GET", f"{V1}/requests/{failed}").json_body["state"] == "failed"
    kiln.configure(cachito_failed_stale_seconds=0)
    assert run_schedule(kiln)["cachito_stale_requests"] == [f"{failed}: stale (was failed)"]


def test_a_result_arriving_after_the_request_went_stale_is_not_kept(kiln: Kiln) -> None:
    kiln.register_host(job_types=("create", "cachito"))
    request_id = h.create(kiln)["id"]
    kiln.configure(cachito_stale_seconds=0)
    run_schedule(kiln)
    h.complete(kiln, request_id)
    assert kiln.call("GET", f"{V1}/requests/{request_id}").json_body["state"] == "stale"
    assert objects(kiln, f"cachito/requests/{request_id}/") == []


@pytest.mark.parametrize("limit", ["age", "size"])
def test_the_dependency_cache_is_evicted_least_recently_used_first(kiln: Kiln, limit: str) -> None:
    bucket = kiln.provisioned.bucket
    for name, then_wait in (("old", 1.1), ("middle", 2.5), ("new", 0)):
        h.s3().put_object(Bucket=bucket, Key=f"{CACHE}deps/sha256/{name}", Body=b"x" * 100)
        time.sleep(then_wait)  # S3 keeps LastModified to the second; "new" is 2.5 s younger
    if limit == "age":
        kiln.configure(cachito_cache_max_age_seconds=2)
        expected = [f"{CACHE}deps/sha256/new"]
    else:
        kiln.configure(cachito_cache_max_bytes=150)
        expected = [f"{CACHE}deps/sha256/new"]
    report = run_schedule(kiln)
    assert objects(kiln, CACHE) == expected, report["cachito_cache_evicted"]
    assert len(report["cachito_cache_evicted"]) == 2
    kiln.configure(cachito_cache_max_age_seconds=3600, cachito_cache_max_bytes=10**9)
    assert run_schedule(kiln)["cachito_cache_evicted"] == []
