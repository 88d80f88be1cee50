"""IMS `link`s name only objects the record's tenant is entitled to: its upload area
(uploads/<tenant>/...) or its own recipes' and images' objects. Tenant "beta" tries, through
every IMS prefix, for recipes and images, on create and on PATCH, to link tenant "alpha"'s
objects and Kiln's own (Glance data, job logs, control objects); then it tries to reach alpha's
objects through a manifest of its own (presigned links, soft delete, purge, legacy cascade,
customize jobs)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.conftest import Kiln, make_archive
from tests.ims.helpers import NOOP_RECIPE, V3, public_key, put_object, ready_recipe

PREFIXES = ("/apis/ims/v3", "/apis/ims", "/apis/ims/v2")
ROOTFS = "application/vnd.cray.image.rootfs.squashfs"
REFUSED = "is not an artifact this tenant may link"


def s3() -> Any:
    return boto3.client("s3", region_name="us-east-1")


def url(kiln: Kiln, key: str) -> str:
    return f"s3://{kiln.provisioned.bucket}/{key}"


def exists(kiln: Kiln, key: str) -> bool:
    listed = s3().list_objects_v2(Bucket=kiln.provisioned.bucket, Prefix=key)
    return any(item["Key"] == key for item in listed.get("Contents", []))


def tags(kiln: Kiln, key: str) -> dict[str, str]:
    found = s3().get_object_tagging(Bucket=kiln.provisioned.bucket, Key=key)["TagSet"]
    return {t["Key"]: t["Value"] for t in found}


def image_with_manifest(kiln: Kiln, tenant: str, folder: str, listed: list[str]) -> dict:
    """An image of ``tenant`` linked to a manifest in ``folder`` listing ``listed`` (keys)."""
    artifacts = [{"type": ROOTFS, "link": {"path": url(kiln, k), "type": "s3"}} for k in listed]
    manifest = json.dumps({"version": "1.0", "artifacts": artifacts}).encode()
    path = put_object(kiln, f"{folder}/manifest.json", manifest)
    body = {"name": "img", "link": {"path": path, "type": "s3"}}
    created = kiln.call("POST", f"{V3}/images", body, tenant=tenant)
    assert created.status_code == 201, created.body
    return dict(created.json_body)


@pytest.fixture
def alpha(kiln: Kiln) -> dict[str, str]:
    """Tenant alpha's objects: a recipe archive uploaded to its recipe, and an image whose
    manifest and rootfs lie under the image's own prefix; plus Kiln's own objects."""
    recipe = kiln.call("POST", f"{V3}/recipes", NOOP_RECIPE, tenant="alpha").json_body
    archive_key = f"recipes/{recipe['id']}/recipe.tar.gz"
    put_object(kiln, archive_key, make_archive({"recipe.yaml": "name: noop\n"}))
    image = kiln.call("POST", f"{V3}/images", {"name": "a"}, tenant="alpha").json_body
    rootfs = f"images/{image['id']}/rootfs.squashfs"
    put_object(kiln, rootfs, b"alpha's root file system")
    manifest = {"artifacts": [{"type": ROOTFS, "link": {"path": url(kiln, rootfs)}}]}
    manifest_key = f"images/{image['id']}/manifest.json"
    put_object(kiln, manifest_key, json.dumps(manifest).encode())
    patched = kiln.call(
        "PATCH",
        f"{V3}/images/{image['id']}",
        {"link": {"path": url(kiln, manifest_key), "type": "s3"}},
        tenant="alpha",
    )
    assert patched.status_code == 200, patched.body
    upload = put_object(kiln, "uploads/alpha/noop.tar.gz", make_archive({"recipe.yaml": "x"}))
    for key in ("glance/x/data", "jobs/x/build.log", "control/jobs/x/cancel"):
        put_object(kiln, key, make_archive({"recipe.yaml": "x"}))
    return {
        "recipe_archive": archive_key,
        "image_manifest": manifest_key,
        "image_rootfs": rootfs,
        "upload": upload.split("/", 3)[3],
        "image_id": image["id"],
        "recipe_id": recipe["id"],
    }


FOREIGN = ("recipe_archive", "image_manifest", "image_rootfs", "upload")
KILN_OWN = ("glance/x/data", "jobs/x/build.log", "control/jobs/x/cancel")


def foreign_keys(alpha: dict[str, str]) -> list[str]:
    return [alpha[name] for name in FOREIGN] + list(KILN_OWN)


def assert_refused(response: Any, path: str) -> None:
    assert response.status_code == 422, response.body
    assert response.headers["Content-Type"] == "application/problem+json"
    assert REFUSED in response.json_body["detail"] and path in response.json_body["detail"]
    assert response.json_body["errors"] == {"link": ["Not an artifact of this tenant."]}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_create_with_a_foreign_link_is_refused_and_writes_nothing(
    kiln: Kiln, alpha: dict[str, str], prefix: str
) -> None:
    for key in foreign_keys(alpha):
        link = {"path": url(kiln, key), "type": "s3"}
        recipe = kiln.call("POST", f"{prefix}/recipes", {**NOOP_RECIPE, "link": link}, "beta")
        assert_refused(recipe, link["path"])
        image = kiln.call("POST", f"{prefix}/images", {"name": "b", "link": link}, "beta")
        assert_refused(image, link["path"])
    assert kiln.call("GET", f"{prefix}/recipes", tenant="beta").json_body == []
    assert kiln.call("GET", f"{prefix}/images", tenant="beta").json_body == []


@pytest.mark.parametrize("prefix", PREFIXES)
def test_patch_with_a_foreign_link_is_refused_and_changes_nothing(
    kiln: Kiln, alpha: dict[str, str], prefix: str
) -> None:
    recipe = kiln.call("POST", f"{prefix}/recipes", NOOP_RECIPE, tenant="beta").json_body
    image = kiln.call("POST", f"{prefix}/images", {"name": "b"}, tenant="beta").json_body
    for key in foreign_keys(alpha):
        link = {"path": url(kiln, key), "type": "s3"}
        for collection, record in (("recipes", recipe), ("images", image)):
            path = f"{prefix}/{collection}/{record['id']}"
            assert_refused(kiln.call("PATCH", path, {"link": link}, tenant="beta"), link["path"])
            assert kiln.call("GET", path, tenant="beta").json_body == record


def test_the_refusal_does_not_say_whether_the_object_exists(
    kiln: Kiln, alpha: dict[str, str]
) -> None:
    present = url(kiln, alpha["recipe_archive"])
    absent = url(kiln, f"recipes/{alpha['recipe_id']}/no-such-archive.tar.gz")
    answers = []
    for path in (present, absent):
        body = {**NOOP_RECIPE, "link": {"path": path, "type": "s3"}}
        response = kiln.call("POST", f"{V3}/recipes", body, tenant="beta")
        assert_refused(response, path)
        answers.append(response.json_body["detail"].replace(path, "<path>"))
    assert answers[0] == answers[1]


def test_dot_segments_cannot_climb_out_of_the_upload_area(
    kiln: Kiln, alpha: dict[str, str]
) -> None:
    key = f"uploads/beta/../../{alpha['image_manifest']}"
    put_object(kiln, key, b"{}")
    response = kiln.call(
        "POST",
        f"{V3}/images",
        {"name": "b", "link": {"path": url(kiln, key), "type": "s3"}},
        "beta",
    )
    assert_refused(response, url(kiln, key))


def test_own_upload_area_and_own_records_objects_may_be_linked(
    kiln: Kiln, alpha: dict[str, str]
) -> None:
    recipe = ready_recipe(kiln, tenant="alpha")  # uploads/alpha/noop.tar.gz
    assert recipe["archive"]["status"] == "ready"
    again = {**NOOP_RECIPE, "link": {"path": url(kiln, alpha["recipe_archive"]), "type": "s3"}}
    linked = kiln.call("POST", f"{V3}/recipes", again, tenant="alpha")
    assert linked.status_code == 201, linked.body
    image = {"name": "c", "link": {"path": url(kiln, alpha["image_manifest"]), "type": "s3"}}
    assert kiln.call("POST", f"{V3}/images", image, tenant="alpha").status_code == 201


def test_a_manifest_of_ones_own_never_reaches_another_tenants_artifacts(
    kiln: Kiln, alpha: dict[str, str]
) -> None:
    """beta's manifest (in its own upload area) lists alpha's rootfs: beta gets no link to it,
    and beta's soft delete, undelete, purge and legacy cascade delete never touch it."""
    put_object(kiln, "uploads/beta/rootfs.squashfs", b"beta's own")
    listed = [alpha["image_rootfs"], "uploads/beta/rootfs.squashfs"]
    image = image_with_manifest(kiln, "beta", "uploads/beta", listed)
    view = kiln.call("GET", f"{V3}/images/{image['id']}/manifest", tenant="beta").json_body
    theirs, mine = view["artifacts"]
    assert "download_url" not in theirs and "download_url" in mine

    assert kiln.call("DELETE", f"{V3}/images/{image['id']}", tenant="beta").status_code == 204
    assert tags(kiln, alpha["image_rootfs"]) == {}
    assert tags(kiln, "uploads/beta/rootfs.squashfs")  # its own object is marked
    undo = {"operation": "undelete"}
    deleted = f"{V3}/deleted/images/{image['id']}"
    assert kiln.call("PATCH", deleted, undo, tenant="beta").status_code == 204
    kiln.call("DELETE", f"{V3}/images/{image['id']}", tenant="beta")
    assert kiln.call("DELETE", deleted, tenant="beta").status_code == 204
    assert exists(kiln, alpha["image_rootfs"]) and not exists(kiln, "uploads/beta/rootfs.squashfs")

    again = image_with_manifest(kiln, "beta", "uploads/beta/2", [alpha["image_rootfs"]])
    for prefix in ("/apis/ims", "/apis/ims/v2"):  # legacy hard delete, cascading
        kiln.call("DELETE", f"{prefix}/images/{again['id']}", tenant="beta")
    assert exists(kiln, alpha["image_rootfs"])
    alphas = kiln.call("GET", f"{V3}/images/{alpha['image_id']}/manifest", tenant="alpha")
    assert alphas.status_code == 200 and alphas.json_body["artifacts"][0]["download_url"]


def test_a_customize_job_gets_only_its_tenants_artifacts(kiln: Kiln, alpha: dict[str, str]) -> None:
    """The build host fetches what the job message lists, and that holds only objects of the
    job's tenant, whatever its image's manifest names."""
    kiln.register_host()
    put_object(kiln, "uploads/beta/kernel", b"beta's kernel")
    image = image_with_manifest(
        kiln, "beta", "uploads/beta", [alpha["image_rootfs"], "uploads/beta/kernel"]
    )
    key = public_key(kiln, tenant="beta")
    body = {
        "job_type": "customize",
        "artifact_id": image["id"],
        "public_key_id": key["id"],
        "image_root_archive_name": "x",
    }
    job = kiln.call("POST", f"{V3}/jobs", body, tenant="beta")
    assert job.status_code == 201, job.body
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = kiln.provisioned.state_machine_arn.replace(":stateMachine:", ":execution:")
    message = json.loads(
        sfn.describe_execution(executionArn=f"{arn}:{job.json_body['id']}")["input"]
    )
    fetched = [artifact["key"] for artifact in message["source_image"]["artifacts"]]
    assert fetched == ["uploads/beta/kernel"]


def test_a_customize_job_on_an_image_linked_elsewhere_is_refused(
    kiln: Kiln, alpha: dict[str, str]
) -> None:
    """alpha's own image is fine for alpha; beta cannot even see it."""
    kiln.register_host()
    key = public_key(kiln, tenant="beta")
    body = {
        "job_type": "customize",
        "artifact_id": alpha["image_id"],
        "public_key_id": key["id"],
        "image_root_archive_name": "x",
    }
    response = kiln.call("POST", f"{V3}/jobs", body, tenant="beta")
    assert response.status_code == 422
    assert response.json_body["errors"] == {"artifact_id": ["No such image."]}
