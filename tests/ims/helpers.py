"""Steps many IMS tests share, done through the HTTP API."""

from __future__ import annotations

from typing import Any

import boto3
import requests

from tests.conftest import Kiln, make_archive

V3 = "/apis/ims/v3"
SSH_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKilnTestKeyOnlyForTestsAAAAAAAAAAAAAAAAAAAA kiln@test"
)
NOOP_RECIPE = {"name": "noop", "recipe_type": "kiln-noop", "linux_distribution": "debian12"}


def put_object(kiln: Kiln, key: str, data: bytes) -> str:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=kiln.provisioned.bucket, Key=key, Body=data)
    return f"s3://{kiln.provisioned.bucket}/{key}"


def ready_recipe(
    kiln: Kiln,
    tenant: str = "demo",
    body: dict[str, Any] | None = None,
    files: dict[str, bytes | str] | None = None,
) -> dict[str, Any]:
    """A recipe created with IMS's own way: POST with a link to an uploaded archive."""
    recipe = dict(body or NOOP_RECIPE)
    archive = make_archive(files or {"recipe.yaml": "name: noop\n"})
    path = put_object(kiln, f"uploads/{tenant}/{recipe['name']}.tar.gz", archive)
    recipe["link"] = {"path": path, "type": "s3"}
    response = kiln.call("POST", f"{V3}/recipes", recipe, tenant=tenant)
    assert response.status_code == 201, response.body
    return dict(response.json_body)


def public_key(kiln: Kiln, tenant: str = "demo") -> dict[str, Any]:
    response = kiln.call(
        "POST", f"{V3}/public-keys", {"name": "k", "public_key": SSH_KEY}, tenant=tenant
    )
    assert response.status_code == 201, response.body
    return dict(response.json_body)


def presigned_put(url: str, data: bytes) -> None:
    response = requests.put(url, data=data, timeout=10)
    assert response.status_code == 200, response.text


def create_job(kiln: Kiln, recipe_id: str, key_id: str, tenant: str = "demo") -> Any:
    """POST a create job; returns the raw response."""
    body = {
        "job_type": "create",
        "artifact_id": recipe_id,
        "public_key_id": key_id,
        "image_root_archive_name": "x",
    }
    return kiln.call("POST", f"{V3}/jobs", body, tenant=tenant)
