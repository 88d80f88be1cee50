"""Builds through Kiln's builds API: `kiln jobs list|show`, `kiln logs [-f]` (the log a host
writes in chunks, then whole), `kiln cancel`, and a compose followed with `--wait` to the end
its cancelled image gives it. No build host serves this Kiln: jobs wait in ``creating`` until
the test writes their log or cancels them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.cli.runner import KilnCommand, assert_fails, finish
from tests.conftest import BUCKET, REGION
from tests.ims.helpers import V3, public_key, ready_recipe
from tests.served import Served

UNKNOWN = "00000000-0000-4000-8000-0000000000aa"
COMPOSE = {
    "distribution": "debian-12",
    "image_requests": [
        {
            "architecture": "x86_64",
            "image_type": "guest-image",
            "repositories": [],
            "upload_options": {"region": "us-east-1"},
        }
    ],
}


def waiting_job(served: Served) -> str:
    """An IMS create job with nothing to build it: it stays ``creating``."""
    body = {
        "job_type": "create",
        "artifact_id": ready_recipe(served.kiln)["id"],
        "public_key_id": public_key(served.kiln)["id"],
        "image_root_archive_name": "cli-test",
    }
    created = served.call("POST", f"{V3}/jobs", body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def put(key: str, text: str) -> None:
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key=key, Body=text.encode())


def test_jobs_list_and_show(kiln_cmd: KilnCommand, served: Served) -> None:
    job_id = waiting_job(served)
    listed = kiln_cmd("jobs", "list", "-o", "json")
    assert listed.code == 0, listed
    build = next(b for b in listed.json()["builds"] if b["id"] == job_id)
    assert build["face"] == "ims" and build["kind"] == "ims-create"
    assert build["status"] == "creating" and build["name"] == "cli-test"

    before_the_command = kiln_cmd("-o", "json", "jobs", "list", "--face", "ims")
    assert job_id in [b["id"] for b in before_the_command.json()["builds"]]
    only_cachito = kiln_cmd("jobs", "list", "--face", "cachito", "-o", "json")
    assert job_id not in [b["id"] for b in only_cachito.json()["builds"]]
    table = kiln_cmd("jobs", "list", "--face", "ims", "--status", "creating")
    assert job_id in table.stdout and "ims-create" in table.stdout

    shown = kiln_cmd("jobs", "show", job_id, "-o", "json")
    assert shown.json()["face_url"] == f"/apis/ims/v3/jobs/{job_id}"
    assert shown.json()["artifacts"] == []
    text = kiln_cmd("jobs", "show", job_id)
    assert text.code == 0 and "queued" in text.stdout


def test_logs_prints_the_log_so_far_and_follows_it_to_its_end(
    kiln_cmd: KilnCommand, served: Served
) -> None:
    job_id = waiting_job(served)
    assert kiln_cmd("logs", job_id).stdout == ""
    put(f"jobs/{job_id}/log/00000000", "fetching the recipe\n")
    assert kiln_cmd("logs", job_id).stdout == "fetching the recipe\n"

    following = kiln_cmd.start("logs", "-f", job_id)
    time.sleep(1.5)
    put(f"jobs/{job_id}/log/00000001", "building\n")
    time.sleep(1.5)
    assert following.poll() is None  # still following: the log is not final
    put(f"jobs/{job_id}/build.log", "fetching the recipe\nbuilding\ndone\n")
    ran = finish(following)
    assert ran.code == 0, ran
    assert ran.stdout == "fetching the recipe\nbuilding\ndone\n"

    as_json = kiln_cmd("logs", job_id, "-o", "json")
    assert as_json.json() == {
        "id": job_id,
        "text": "fetching the recipe\nbuilding\ndone\n",
        "size": len("fetching the recipe\nbuilding\ndone\n"),
        "streaming": False,
    }


def test_cancel_ends_a_build_once(kiln_cmd: KilnCommand, served: Served) -> None:
    job_id = waiting_job(served)
    cancelled = kiln_cmd("cancel", job_id, "-o", "json")
    assert cancelled.code == 0, cancelled
    assert cancelled.json()["status"] == "error" and cancelled.json()["phase"] == "error"
    assert "cancelled" in cancelled.json()["status_reason"]
    assert_fails(kiln_cmd("cancel", job_id), 6, "409 Conflict", "already ended")


def test_an_unknown_build_is_not_found(kiln_cmd: KilnCommand) -> None:
    assert_fails(kiln_cmd("logs", UNKNOWN), 4, "404 Not Found", f"build {UNKNOWN} not found")
    assert_fails(kiln_cmd("logs", "-f", UNKNOWN), 4, "404 Not Found")
    assert_fails(kiln_cmd("cancel", UNKNOWN), 4, "404 Not Found")
    assert_fails(kiln_cmd("jobs", "show", UNKNOWN), 4, "404 Not Found")


def test_bad_filters_are_usage_errors(kiln_cmd: KilnCommand) -> None:
    assert_fails(kiln_cmd("jobs", "list", "--face", "koji"), 2, "'koji' is not one of")
    assert_fails(kiln_cmd("jobs", "list", "--limit", "0"), 2, "--limit")
    assert_fails(kiln_cmd("logs"), 2, "Missing argument 'JOB_ID'")


def _compose_build(served: Served, known: set[str]) -> str:
    deadline = time.time() + 30
    while time.time() < deadline:
        listed = served.call("GET", "/kiln/v1/builds?face=composer").json()["builds"]
        new = [b["id"] for b in listed if b["id"] not in known]
        if new:
            return str(new[0])
        time.sleep(0.2)
    raise AssertionError("the compose made no build")


@pytest.mark.parametrize("mode", ["text", "json"])
def test_a_followed_compose_whose_image_is_cancelled_fails(
    kiln_cmd: KilnCommand, served: Served, tmp_path: Path, mode: str
) -> None:
    request = tmp_path / "compose.json"
    request.write_text(json.dumps(COMPOSE))
    known = {b["id"] for b in served.call("GET", "/kiln/v1/builds?limit=200").json()["builds"]}
    following = kiln_cmd.start("compose", str(request), "--wait", "-o", mode)
    build_id = _compose_build(served, known)
    time.sleep(1.5)  # followed for a while in ``pending``
    assert following.poll() is None
    assert served.call("POST", f"/kiln/v1/builds/{build_id}/cancel").status_code == 202
    ran = finish(following)
    line = assert_fails(ran, 1, "failed", "The image build was cancelled", alone=mode == "json")
    compose_id = line.split("compose ")[1].split()[0]
    face_url = served.call("GET", f"/kiln/v1/builds/{build_id}").json()["face_url"]
    assert face_url == f"/api/image-builder-composer/v2/composes/{compose_id}"
    if mode == "json":
        result: dict[str, Any] = ran.json()
        assert result["compose"]["status"] == "failure"
        assert result["compose"]["image_statuses"][0]["status"] == "failure"
    else:
        assert "pending" in ran.stderr and "failure" in ran.stderr
        assert "image 0 guest-image x86_64" in ran.stderr
