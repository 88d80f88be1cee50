"""Soft delete, undelete and purge (v3), hard delete (legacy), and what a crash between the
S3 and DynamoDB steps leaves behind."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from chalicelib.domain.ims import lifecycle
from tests.conftest import Kiln
from tests.handlers.test_cleanup import scheduled
from tests.ims.helpers import V3, public_key, put_object, ready_recipe

DELETED = f"{V3}/deleted"


def s3() -> Any:
    return boto3.client("s3", region_name="us-east-1")


def keys(kiln: Kiln) -> set[str]:
    listed = s3().list_objects_v2(Bucket=kiln.provisioned.bucket).get("Contents", [])
    return {item["Key"] for item in listed}


def tags(kiln: Kiln, key: str) -> dict[str, str]:
    found = s3().get_object_tagging(Bucket=kiln.provisioned.bucket, Key=key)["TagSet"]
    return {t["Key"]: t["Value"] for t in found}


def image_with_artifacts(kiln: Kiln, tenant: str = "demo") -> tuple[dict, list[str]]:
    """An image registered with a link to a manifest that lists one artifact."""
    rootfs = put_object(kiln, f"uploads/{tenant}/rootfs.squashfs", b"squash")
    manifest = {"artifacts": [{"type": "x", "link": {"path": rootfs, "type": "s3"}}]}
    path = put_object(kiln, f"uploads/{tenant}/manifest.json", json.dumps(manifest).encode())
    body = {"name": "img", "link": {"path": path, "type": "s3"}}
    image = kiln.call("POST", f"{V3}/images", body, tenant=tenant).json_body
    return image, [f"uploads/{tenant}/manifest.json", f"uploads/{tenant}/rootfs.squashfs"]


def recipe_with_archive(kiln: Kiln, tenant: str = "demo") -> tuple[dict, list[str]]:
    recipe = ready_recipe(kiln, tenant=tenant)
    return recipe, [f"uploads/{tenant}/noop.tar.gz"]


def key_without_artifacts(kiln: Kiln, tenant: str = "demo") -> tuple[dict, list[str]]:
    return public_key(kiln, tenant=tenant), []


MAKERS: dict[str, Callable[..., tuple[dict, list[str]]]] = {
    "recipes": recipe_with_archive,
    "images": image_with_artifacts,
    "public-keys": key_without_artifacts,
}


@pytest.mark.parametrize("collection", sorted(MAKERS))
def test_soft_delete_undelete_and_purge(kiln: Kiln, collection: str) -> None:
    record, artifacts = MAKERS[collection](kiln)
    live = f"{V3}/{collection}/{record['id']}"
    gone = f"{DELETED}/{collection}/{record['id']}"

    assert kiln.call("DELETE", live).status_code == 204
    assert kiln.call("GET", live).status_code == 404
    assert kiln.call("GET", f"{V3}/{collection}").json_body == []
    deleted = kiln.call("GET", gone).json_body
    assert deleted["deleted"] and {**deleted, "deleted": None} == {**record, "deleted": None}
    assert kiln.call("GET", f"{DELETED}/{collection}").json_body == [deleted]
    for key in artifacts:  # kept, and marked
        assert tags(kiln, key) == {"kiln-deleted": deleted["deleted"]}
    assert kiln.call("DELETE", live).status_code == 404  # already deleted

    assert kiln.call("PATCH", gone, {"operation": "undelete"}).status_code == 204
    assert kiln.call("GET", live).json_body == record  # restored exactly
    assert kiln.call("GET", gone).status_code == 404
    for key in artifacts:
        assert tags(kiln, key) == {}

    assert kiln.call("DELETE", live).status_code == 204
    assert kiln.call("DELETE", gone).status_code == 204
    assert kiln.call("GET", gone).status_code == 404
    assert kiln.call("GET", live).status_code == 404
    assert not set(artifacts) & keys(kiln)


@pytest.mark.parametrize("collection", sorted(MAKERS))
def test_collection_wide_forms(kiln: Kiln, collection: str) -> None:
    first, _ = MAKERS[collection](kiln)
    theirs, _ = MAKERS[collection](kiln, tenant="other")
    assert kiln.call("DELETE", f"{V3}/{collection}").status_code == 204
    assert kiln.call("GET", f"{V3}/{collection}").json_body == []
    assert [r["id"] for r in kiln.call("GET", f"{DELETED}/{collection}").json_body] == [first["id"]]
    others = kiln.call("GET", f"{V3}/{collection}", tenant="other").json_body
    assert [r["id"] for r in others] == [theirs["id"]]  # another tenant's records untouched

    undo = kiln.call("PATCH", f"{DELETED}/{collection}", {"operation": "undelete"})
    assert undo.status_code == 204
    assert kiln.call("GET", f"{V3}/{collection}").json_body == [first]

    kiln.call("DELETE", f"{V3}/{collection}")
    assert kiln.call("DELETE", f"{DELETED}/{collection}").status_code == 204
    assert kiln.call("GET", f"{DELETED}/{collection}").json_body == []
    assert kiln.call("GET", f"{V3}/{collection}/{first['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [(None, 400), ({}, 400), ({"operation": "explode"}, 422), ({"op": "undelete"}, 422)],
)
def test_bad_undelete_body(kiln: Kiln, body: Any, status: int) -> None:
    recipe, _ = recipe_with_archive(kiln)
    kiln.call("DELETE", f"{V3}/recipes/{recipe['id']}")
    for path in (f"{DELETED}/recipes/{recipe['id']}", f"{DELETED}/recipes"):
        response = kiln.call("PATCH", path, body)
        assert response.status_code == status
        assert response.headers["Content-Type"] == "application/problem+json"
    assert kiln.call("GET", f"{DELETED}/recipes/{recipe['id']}").status_code == 200


def test_other_tenants_cannot_touch_a_record(kiln: Kiln) -> None:
    recipe, _ = recipe_with_archive(kiln)
    path = f"{V3}/recipes/{recipe['id']}"
    assert kiln.call("DELETE", path, tenant="other").status_code == 404
    kiln.call("DELETE", path)
    gone = f"{DELETED}/recipes/{recipe['id']}"
    assert kiln.call("PATCH", gone, {"operation": "undelete"}, tenant="other").status_code == 404
    assert kiln.call("DELETE", gone, tenant="other").status_code == 404
    assert kiln.call("GET", gone).status_code == 200


@pytest.mark.parametrize("prefix", ["/apis/ims", "/apis/ims/v2"])
def test_legacy_delete_is_a_hard_delete_with_cascade(kiln: Kiln, prefix: str) -> None:
    image, artifacts = image_with_artifacts(kiln)
    assert kiln.call("DELETE", f"{prefix}/images/{image['id']}").status_code == 204
    assert kiln.call("GET", f"{V3}/images/{image['id']}").status_code == 404
    assert kiln.call("GET", f"{DELETED}/images").json_body == []
    assert not set(artifacts) & keys(kiln)


def test_legacy_delete_without_cascade_keeps_artifacts(kiln: Kiln) -> None:
    recipe, artifacts = recipe_with_archive(kiln)
    response = kiln.call("DELETE", f"/apis/ims/recipes/{recipe['id']}?cascade=false")
    assert response.status_code == 204
    assert kiln.call("GET", f"{V3}/recipes/{recipe['id']}").status_code == 404
    assert set(artifacts) <= keys(kiln)
    bad = kiln.call("DELETE", "/apis/ims/recipes?cascade=maybe")
    assert bad.status_code == 422


def test_image_used_by_an_unfinished_job_cannot_be_deleted(kiln: Kiln) -> None:
    kiln.register_host()
    image, _ = image_with_artifacts(kiln)
    key = public_key(kiln)
    job = kiln.call(
        "POST",
        f"{V3}/jobs",
        {
            "job_type": "customize",
            "artifact_id": image["id"],
            "public_key_id": key["id"],
            "image_root_archive_name": "custom",
        },
    ).json_body
    assert job["status"] == "creating"
    for method, path in (("DELETE", f"{V3}/images/{image['id']}"), ("DELETE", f"{V3}/images")):
        refused = kiln.call(method, path)
        assert refused.status_code == 409 and job["id"] in refused.json_body["detail"]
    assert kiln.call("GET", f"{V3}/images/{image['id']}").status_code == 200

    kiln.build_events(
        {"type": "result", "outcome": "failure", "job_id": job["id"], "error": {"Error": "x"}}
    )
    assert kiln.call("DELETE", f"{V3}/images/{image['id']}").status_code == 204


class Crash(Exception):
    pass


def crash_once(monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> None:
    original = getattr(target, name)
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Crash(f"{name} crashed")
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, failing)


def test_crash_before_the_record_is_refiled_is_finished_by_the_next_call(
    kiln: Kiln, monkeypatch: pytest.MonkeyPatch
) -> None:
    image, artifacts = image_with_artifacts(kiln)
    crash_once(monkeypatch, lifecycle, "finish_step")  # S3 done, DynamoDB step fails
    path = f"{V3}/images/{image['id']}"
    assert kiln.call("DELETE", path).status_code == 500
    assert all(tags(kiln, key) for key in artifacts)

    assert kiln.call("DELETE", path).status_code == 404  # the retry finished the delete
    assert kiln.call("GET", f"{DELETED}/images/{image['id']}").json_body["deleted"]


def test_crash_in_the_s3_step_is_finished_by_the_cleanup(
    kiln: Kiln, monkeypatch: pytest.MonkeyPatch
) -> None:
    image, artifacts = image_with_artifacts(kiln)
    kiln.call("DELETE", f"{V3}/images/{image['id']}")
    from chalicelib.adapters.artifacts import ArtifactStore

    crash_once(monkeypatch, ArtifactStore, "delete")  # the purge dies after one step began
    assert kiln.call("DELETE", f"{DELETED}/images/{image['id']}").status_code == 500
    assert kiln.call("GET", f"{DELETED}/images/{image['id']}").status_code == 200

    kiln.client.lambda_.invoke("on_cleanup_schedule", scheduled(kiln))  # too recent: left
    assert kiln.call("GET", f"{DELETED}/images/{image['id']}").status_code == 200
    kiln.configure(interrupted_grace_seconds=0)
    kiln.client.lambda_.invoke("on_cleanup_schedule", scheduled(kiln))
    assert kiln.call("GET", f"{DELETED}/images/{image['id']}").status_code == 404
    assert not set(artifacts) & keys(kiln)


def test_undelete_crash_is_finished_by_the_next_call(
    kiln: Kiln, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe, artifacts = recipe_with_archive(kiln)
    kiln.call("DELETE", f"{V3}/recipes/{recipe['id']}")
    crash_once(monkeypatch, lifecycle, "finish_step")
    gone = f"{DELETED}/recipes/{recipe['id']}"
    assert kiln.call("PATCH", gone, {"operation": "undelete"}).status_code == 500
    again = kiln.call("PATCH", gone, {"operation": "undelete"})
    assert again.status_code == 404  # finishing the first undelete made it live again
    assert kiln.call("GET", f"{V3}/recipes/{recipe['id']}").json_body == recipe
    assert tags(kiln, artifacts[0]) == {}
