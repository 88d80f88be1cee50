"""Bad composer requests get the registry's error, with details, and start and write nothing;
the registry pages and serves every error the face returns."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from tests.composer.helpers import API, MIRROR, compose_body, image, post, s3
from tests.conftest import Kiln

BAD = [
    ({"distribution": "fedora-40", "image_request": image()}, 400, "4", "osbuild"),
    ({"distribution": "windows-11", "image_request": image()}, 400, "4", "debian-12"),
    ({"distribution": "debian-12", "image_request": image("s390x")}, 400, "5", "s390x"),
    (
        {"distribution": "debian-12", "image_request": image(image_type="edge-commit")},
        400,
        "6",
        "guest-image",
    ),
    ({"distribution": "debian-12", "image_request": image(image_type="nope")}, 400, "30", "nope"),
    (
        {
            "distribution": "debian-12",
            "image_request": {**image(), "repositories": [{"rhsm": False}]},
        },
        400,
        "7",
        "baseurl",
    ),
    (
        {
            "distribution": "debian-12",
            "image_request": {**image(), "repositories": [{"rhsm": True, "baseurl": MIRROR}]},
        },
        400,
        "7",
        "rhsm",
    ),
    (
        {
            "distribution": "debian-12",
            "image_request": {"architecture": "x86_64", "image_type": "aws"},
        },
        400,
        "7",
        "repositories",
    ),
    ({"distribution": "debian-12"}, 400, "25", "no image"),
    (
        {"distribution": "debian-12", "image_request": image(), "image_requests": [image()]},
        400,
        "25",
        "not both",
    ),
    ({"distribution": "debian-12", "image_requests": []}, 400, "25", "no image"),
    (
        {
            **compose_body(),
            "koji": {
                "server": "https://koji",
                "task_id": 1,
                "name": "n",
                "version": "1",
                "release": "1",
            },
        },
        400,
        "31",
        "Koji hub",
    ),
    ({"distribution": "debian-12", "image_request": image(image_type="aws")}, 400, "32", "region"),
    (
        {
            "distribution": "debian-12",
            "image_request": image(
                image_type="aws",
                upload_options={"region": "eu-west-1", "share_with_accounts": ["alice"]},
            ),
        },
        400,
        "32",
        "12-digit",
    ),
    (
        {**compose_body(), "customizations": {"payload_repositories": [{"rhsm": False}]}},
        400,
        "24",
        "baseurl",
    ),
    ({**compose_body(), "customizations": {"packages": ["rm -rf /"]}}, 400, "30", "package"),
    (
        {**compose_body(), "customizations": {"users": [{"name": "Bad Name"}]}},
        400,
        "30",
        "users[0].name",
    ),
    (
        {
            **compose_body(),
            "customizations": {"filesystem": [{"mountpoint": "var", "min_size": 1}]},
        },
        400,
        "30",
        "mountpoint",
    ),
    ({**compose_body(), "customizations": {"subscription": {}}}, 400, "30", "RHEL"),
    ({**compose_body(), "colour": "blue"}, 400, "30", "colour"),
    ([1, 2], 400, "30", "object"),
    ("{not json", 400, "20", "JSON"),
]


@pytest.mark.parametrize(("body", "code", "error_id", "detail"), BAD)
def test_bad_compose_requests_get_registry_errors(
    hosts: Kiln, body: Any, code: int, error_id: str, detail: str
) -> None:
    response = post(hosts, body)
    assert response.status_code == code, response.body
    error = response.json_body
    assert error["id"] == error_id and error["kind"] == "Error"
    assert error["code"] == f"IMAGE-BUILDER-COMPOSER-{error_id}"
    assert error["href"] == f"{API}/errors/{error_id}" and error["operation_id"]
    assert detail in error["details"], error["details"]
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = hosts.provisioned.state_machine_arn
    assert sfn.list_executions(stateMachineArn=arn)["executions"] == []  # nothing started
    listed = s3().list_objects_v2(Bucket=hosts.provisioned.bucket, Prefix="composes/")
    assert listed.get("KeyCount", 0) == 0  # and nothing was written


def test_auth_media_type_and_ids_are_checked(hosts: Kiln) -> None:
    no_token = hosts.call("GET", f"{API}/composes/x", headers={})
    assert no_token.status_code == 401 and no_token.json_body["id"] == "401"
    text = post(hosts, "x", headers={**hosts.headers(), "Content-Type": "text/plain"})
    assert text.status_code == 415 and text.json_body["id"] == "3"
    assert hosts.call("GET", f"{API}/composes/not-a-uuid").json_body["id"] == "14"
    missing = hosts.call("GET", f"{API}/composes/123e4567-e89b-12d3-a456-426655440000/logs")
    assert missing.status_code == 404 and missing.json_body["id"] == "15"
    bad_offset = hosts.call(
        "GET", f"{API}/composes/123e4567-e89b-12d3-a456-426655440000/logs?offset=-1"
    )
    assert bad_offset.status_code == 400 and bad_offset.json_body["id"] == "33"


def test_the_error_registry_pages_and_serves_each_error(kiln: Kiln) -> None:
    first = kiln.call("GET", f"{API}/errors?page=0&size=5").json_body
    assert first["kind"] == "ErrorList" and first["page"] == 0 and first["size"] == 5
    everything = kiln.call("GET", f"{API}/errors").json_body
    assert everything["total"] == len(everything["items"]) == first["total"]
    assert first["items"] == everything["items"][:5]
    for item in everything["items"]:
        one = kiln.call("GET", item["href"])
        assert one.status_code == 200 and one.json_body["reason"] == item["reason"]
    assert kiln.call("GET", f"{API}/errors/999999").json_body["id"] == "17"
    assert kiln.call("GET", f"{API}/errors/abc").json_body["id"] == "16"
    assert kiln.call("GET", f"{API}/errors?page=x").json_body["id"] == "18"
    assert kiln.call("GET", f"{API}/errors?size=-2").json_body["id"] == "19"
    beyond = kiln.call("GET", f"{API}/errors?page=100").json_body
    assert beyond["items"] == [] and beyond["size"] == 0


def test_every_error_the_face_returns_is_in_the_registry(hosts: Kiln) -> None:
    listed = {
        item["id"] for item in hosts.call("GET", f"{API}/errors?size=1000").json_body["items"]
    }
    for _body, _code, error_id, _detail in BAD:
        assert error_id in listed
    assert {"401", "3", "14", "15", "16", "17", "18", "19", "33"} <= listed
