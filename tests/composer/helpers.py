"""Compose requests and lookups the composer tests share (all through the public surfaces)."""

from __future__ import annotations

import json
from typing import Any

import boto3

from tests.conftest import Kiln

API = "/api/image-builder-composer/v2"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKilnTestKeyOnlyForTestsAAAAAAAAAAAAAAAAAAAA a@b"
MIRROR = "http://deb.example/debian"


def image(arch: str = "x86_64", image_type: str = "guest-image", **extra: Any) -> dict[str, Any]:
    return {
        "architecture": arch,
        "image_type": image_type,
        "repositories": [{"rhsm": False, "baseurl": MIRROR}],
        **extra,
    }


def compose_body(*images: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "distribution": "debian-12",
        "image_requests": list(images) or [image()],
        "customizations": {
            "packages": ["htop"],
            "users": [{"name": "alice", "groups": ["wheel"], "key": KEY}],
            "filesystem": [{"mountpoint": "/", "min_size": 3 << 30}],
        },
        **extra,
    }


def execution_input(kiln: Kiln, job_id: str) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = kiln.provisioned.state_machine_arn.replace(":stateMachine:", ":execution:")
    return dict(json.loads(sfn.describe_execution(executionArn=f"{arn}:{job_id}")["input"]))


def job_ids(kiln: Kiln, compose_id: str) -> list[str]:
    """The compose's build jobs, as the build hosts see them (the execution inputs)."""
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    found = {}
    for item in sfn.list_executions(stateMachineArn=kiln.provisioned.state_machine_arn)[
        "executions"
    ]:
        message = execution_input(kiln, item["name"])
        if message["recipe"]["key"].startswith(f"composes/{compose_id}/"):
            found[int(message["recipe"]["key"].split("/")[2])] = item["name"]
    return [found[i] for i in sorted(found)]


def post(kiln: Kiln, body: Any, **kw: Any) -> Any:
    return kiln.call("POST", f"{API}/compose", body, **kw)


def status(kiln: Kiln, compose_id: str) -> dict[str, Any]:
    response = kiln.call("GET", f"{API}/composes/{compose_id}")
    assert response.status_code == 200, response.body
    return dict(response.json_body)


def s3() -> Any:
    return boto3.client("s3", region_name="us-east-1")
