"""Per-build stage timings and cost, as each face shows them (docs/build-cost.md)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import Kiln
from tests.ims.helpers import NOOP_RECIPE, V3, public_key, ready_recipe

STAGES = {"fetch": 1.5, "resolve": 0.5, "build": 30.0, "package": 2.0, "upload": 6.0}


def _ims_job(kiln: Kiln, tenant: str = "demo", **extra: Any) -> dict[str, Any]:
    recipe, key = ready_recipe(kiln, tenant=tenant), public_key(kiln, tenant=tenant)
    body = {
        "job_type": "create",
        "artifact_id": recipe["id"],
        "public_key_id": key["id"],
        "image_root_archive_name": "img",
        **extra,
    }
    response = kiln.call("POST", f"{V3}/jobs", body, tenant=tenant)
    assert response.status_code == 201, response.json_body
    return dict(response.json_body)


def _success(job_id: str, started_at: float, **output: Any) -> dict[str, Any]:
    return {
        "type": "result",
        "outcome": "success",
        "job_id": job_id,
        "output": {
            "manifest": {"etag": "abc"},
            "node": "test-host",
            "build_seconds": sum(STAGES.values()),
            "timings": STAGES,
            "started_at": started_at,
            "answered_at": started_at + sum(STAGES.values()),
            **output,
        },
    }


@pytest.fixture
def host(kiln: Kiln) -> Kiln:
    kiln.register_host()
    return kiln


def test_an_ims_job_shows_seconds_per_stage_and_its_cost(host: Kiln) -> None:
    host.configure(price_per_hour_x86_64=0.36)
    job = _ims_job(host)
    assert host.call("GET", f"{V3}/jobs/{job['id']}").json_body["timing"]["host_started"] is None
    host.build_events(_success(job["id"], time.time() + 4.0))
    timing = host.call("GET", f"{V3}/jobs/{job['id']}").json_body["timing"]
    stages = timing["stages"]
    assert {name: stages[name] for name in STAGES} == STAGES
    assert 3.0 <= stages["queue_wait"] <= 60  # from the job's creation to the host's start
    assert timing["instance_seconds"] == 40.0
    assert timing["cost"] == {
        "currency": "USD",
        "estimate": 0.004,  # 40 s at 0.36 USD an hour
        "price_per_hour": 0.36,
        "arch": "x86_64",
    }
    assert timing["total_seconds"] == pytest.approx(40.0 + stages["queue_wait"], abs=0.01)
    assert "cache" not in timing  # the host said nothing of the build cache


def test_the_price_per_arch_comes_from_the_configuration(host: Kiln) -> None:
    host.register_host(arch="aarch64", xname="arm-host")
    host.configure(price_per_hour_aarch64=0.18)
    recipe = ready_recipe(host, body={**NOOP_RECIPE, "name": "arm", "arch": "aarch64"})
    body = {
        "job_type": "create",
        "artifact_id": recipe["id"],
        "public_key_id": public_key(host)["id"],
        "image_root_archive_name": "img",
    }
    job = host.call("POST", f"{V3}/jobs", body).json_body
    host.build_events(_success(job["id"], time.time()))
    cost = host.call("GET", f"{V3}/jobs/{job['id']}").json_body["timing"]["cost"]
    assert cost == {"currency": "USD", "estimate": 0.002, "price_per_hour": 0.18, "arch": "aarch64"}


def test_a_cache_hit_shows_in_the_timing(host: Kiln) -> None:
    job = _ims_job(host)
    cache = {"key": "a" * 64, "hit": True, "prefix": "build-cache/demo/x/", "source_job": "j"}
    host.build_events(_success(job["id"], time.time(), cache=cache))
    assert host.call("GET", f"{V3}/jobs/{job['id']}").json_body["timing"]["cache"] == "hit"


def test_a_failed_job_shows_its_wait_and_the_time_its_host_held_it(host: Kiln) -> None:
    job = _ims_job(host)
    started = time.time() - 5
    host.build_events(
        {"type": "progress", "job_id": job["id"], "status": "fetching_recipe", "time": started}
    )
    failure = {"Error": "BuildFailed: E: Unable to locate package nope", "Cause": ""}
    host.build_events(
        {"type": "result", "outcome": "failure", "job_id": job["id"], "error": failure}
    )
    timing = host.call("GET", f"{V3}/jobs/{job['id']}").json_body["timing"]
    assert set(timing["stages"]) == {"queue_wait"}
    assert 4.5 <= timing["instance_seconds"] <= 60 and timing["cost"]["estimate"] > 0


def test_bad_prices_are_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.config import Settings

    monkeypatch.setenv("KILN_PRICE_PER_HOUR_AARCH64", "cheap")
    with pytest.raises(ValueError):
        Settings.from_env()


def test_a_compose_image_shows_its_timing_and_fresh_build_is_checked(host: Kiln) -> None:
    from tests.composer.helpers import API, compose_body, job_ids, post

    refused = post(host, compose_body(fresh_build="yes"))
    assert refused.status_code == 400
    assert refused.json_body["code"] == "IMAGE-BUILDER-COMPOSER-30", refused.json_body
    assert "fresh_build" in refused.json_body["details"]
    compose_id = post(host, compose_body(fresh_build=True)).json_body["id"]
    (job_id,) = job_ids(host, compose_id)
    from tests.composer.helpers import execution_input

    assert execution_input(host, job_id)["use_cache"] is False  # fresh: never from the cache
    host.build_events(_success(job_id, time.time()))
    image_status = host.call("GET", f"{API}/composes/{compose_id}").json_body["image_statuses"][0]
    assert image_status["status"] == "success"
    assert image_status["timing"]["stages"]["build"] == STAGES["build"]
    assert image_status["timing"]["cost"]["currency"] == "USD"


def test_a_cachito_request_shows_its_timing(kiln: Kiln) -> None:
    from tests.cachito import helpers as cachito

    kiln.register_host(job_types=("create", "customize", "cachito"))
    request_id = cachito.create(kiln)["id"]
    cachito.complete(kiln, request_id)
    shown = cachito.get(kiln, f"/requests/{request_id}").json_body
    assert shown["state"] == "complete"
    assert set(shown["timing"]["stages"]) == {"queue_wait"}  # the helper's host sent none
    assert shown["timing"]["cost"]["arch"] == "x86_64"
