"""Glance images through HTTP: create, show, JSON patch, delete and (de)activation, answered as
the api-ref (images-images-v2.inc) and Glance's own code answer them."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from tests.glance.conftest import Glance
from tests.glance.http_support import PATCH_20, PATCH_21

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
BASE = {
    "id", "name", "status", "visibility", "protected", "os_hidden", "disk_format",
    "container_format", "min_disk", "min_ram", "size", "virtual_size", "checksum",
    "os_hash_algo", "os_hash_value", "owner", "tags", "created_at", "updated_at", "self",
    "file", "schema",
}  # fmt: skip


def status(response: Any) -> int:
    return int(response.status_code)


# --- create ---------------------------------------------------------------------------------


def test_create_answers_201_with_every_base_field(glance: Glance) -> None:
    response = glance.call("POST", "/v2/images", {"name": "cirros", "tags": ["a", "b"]})
    assert status(response) == 201, response.body
    body = response.json_body
    assert set(body) >= BASE
    image_id = body["id"]
    assert uuid.UUID(image_id)
    assert body["name"] == "cirros"
    assert body["status"] == "queued"
    assert body["visibility"] == "shared"
    assert body["owner"] == "alpha"
    assert body["protected"] is False and body["os_hidden"] is False
    assert body["min_disk"] == 0 and body["min_ram"] == 0
    for empty in ("disk_format", "container_format", "size", "virtual_size", "checksum",
                  "os_hash_algo", "os_hash_value"):  # fmt: skip
        assert body[empty] is None, empty
    assert body["tags"] == ["a", "b"]
    assert body["self"] == f"/v2/images/{image_id}"
    assert body["file"] == f"/v2/images/{image_id}/file"
    assert body["schema"] == "/v2/schemas/image"
    assert STAMP.match(body["created_at"]) and STAMP.match(body["updated_at"])
    assert response.headers["Location"].endswith(f"/v2/images/{image_id}")
    assert glance.show(image_id).json_body == body


def test_create_with_chosen_id_and_reuse_conflicts(glance: Glance) -> None:
    chosen = str(uuid.uuid4())
    assert glance.create(id=chosen)["id"] == chosen
    again = glance.call("POST", "/v2/images", {"id": chosen}, tenant="beta")
    assert status(again) == 409


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "1234", 42])
def test_create_with_malformed_id_is_400(glance: Glance, bad_id: Any) -> None:
    assert status(glance.call("POST", "/v2/images", {"id": bad_id})) == 400


@pytest.mark.parametrize(
    "field",
    ["status", "size", "checksum", "virtual_size", "created_at", "updated_at",
     "os_hash_algo", "os_hash_value", "self", "file", "schema", "direct_url"],
)  # fmt: skip
def test_create_with_read_only_attribute_is_403(glance: Glance, field: str) -> None:
    response = glance.call("POST", "/v2/images", {"name": "x", field: "active"})
    assert status(response) == 403, response.body
    assert "read-only" in response.json_body["message"]


@pytest.mark.parametrize("field", ["os_glance_x", "os_glance_import_task", "location", "deleted"])
def test_create_with_reserved_attribute_is_403(glance: Glance, field: str) -> None:
    response = glance.call("POST", "/v2/images", {"name": "x", field: "v"})
    assert status(response) == 403, response.body
    assert "reserved" in response.json_body["message"]


@pytest.mark.parametrize(
    "fields",
    [
        {"disk_format": "floppy"},
        {"container_format": "zip"},
        {"visibility": "everyone"},
        {"min_disk": -1},
        {"min_disk": "1"},
        {"min_ram": 1.5},
        {"protected": "yes"},
        {"name": "n" * 256},
        {"tags": "a,b"},
        {"tags": ["t" * 256]},
        {"hw_disk_bus": 3},
        {"os_distro": None},
        {"k" * 256: "v"},
    ],
)
def test_create_with_bad_value_is_400(glance: Glance, fields: dict[str, Any]) -> None:
    response = glance.call("POST", "/v2/images", fields)
    assert status(response) == 400, response.body
    assert glance.call("GET", "/v2/images").json_body["images"] == []


def test_create_public_needs_admin(glance: Glance) -> None:
    assert status(glance.call("POST", "/v2/images", {"visibility": "public"})) == 403
    made = glance.create(role="admin", visibility="public")
    assert made["visibility"] == "public"


def test_create_for_another_owner_is_403_for_a_user(glance: Glance) -> None:
    assert status(glance.call("POST", "/v2/images", {"owner": "beta"})) == 403
    assert glance.create(role="admin", owner="beta")["owner"] == "beta"


def test_custom_properties_are_shown_flat(glance: Glance) -> None:
    made = glance.create(os_distro="cirros", hw_disk_bus="virtio")
    assert made["os_distro"] == "cirros" and made["hw_disk_bus"] == "virtio"
    assert "properties" not in made
    assert glance.show(made["id"]).json_body["os_distro"] == "cirros"


def test_create_without_body_or_with_a_list_is_400(glance: Glance) -> None:
    assert status(glance.call("POST", "/v2/images", [])) == 400
    assert status(glance.call("POST", "/v2/images", b"{not json")) == 400


# --- show -----------------------------------------------------------------------------------


@pytest.mark.parametrize("visibility", ["private", "shared"])
def test_another_tenants_unshared_image_is_404(glance: Glance, visibility: str) -> None:
    image_id = glance.create(visibility=visibility)["id"]
    assert status(glance.show(image_id, tenant="alpha")) == 200
    response = glance.show(image_id, tenant="beta")
    assert status(response) == 404
    assert response.json_body["code"] == "404 Not Found"
    assert status(glance.call("GET", f"/v2/images/{image_id}", role="admin", tenant="gamma")) == 200


@pytest.mark.parametrize("visibility", ["public", "community"])
def test_public_and_community_images_are_visible_to_others(glance: Glance, visibility: str) -> None:
    image_id = glance.create(role="admin", visibility=visibility)["id"]
    assert glance.show(image_id, tenant="beta").json_body["visibility"] == visibility


@pytest.mark.parametrize("image_id", ["nope", "12345678-1234-1234-1234-1234567890ab", "x" * 300])
def test_show_missing_or_malformed_id_is_404(glance: Glance, image_id: str) -> None:
    assert status(glance.show(image_id)) == 404


# --- patch ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, ops",
    [
        (PATCH_21, [{"op": "replace", "path": "/name", "value": "new"}]),
        (PATCH_20, [{"replace": "/name", "value": "new"}]),
    ],
)
def test_patch_in_both_media_types(glance: Glance, kind: str, ops: list[Any]) -> None:
    image_id = glance.create(name="old")["id"]
    response = glance.patch(image_id, ops, kind=kind)
    assert status(response) == 200, response.body
    assert response.json_body["name"] == "new"
    assert glance.show(image_id).json_body["name"] == "new"


@pytest.mark.parametrize("content_type", ["application/json", "application/json-patch+json"])
def test_patch_with_another_media_type_is_415_naming_the_accepted_ones(
    glance: Glance, content_type: str
) -> None:
    image_id = glance.create(name="old")["id"]
    ops = [{"op": "replace", "path": "/name", "value": "new"}]
    response = glance.patch(image_id, ops, kind=content_type)
    assert status(response) == 415
    accepted = {t.strip() for t in response.headers["Accept-Patch"].split(",")}
    assert accepted == {PATCH_20, PATCH_21}
    assert glance.show(image_id).json_body["name"] == "old"


def test_patch_add_replace_remove_name_and_custom_properties(glance: Glance) -> None:
    made = glance.create(name="n", os_distro="cirros", gone="soon")
    ops = [
        {"op": "replace", "path": "/name", "value": "renamed"},
        {"op": "add", "path": "/hw_disk_bus", "value": "virtio"},
        {"op": "add", "path": "/os_distro", "value": "ubuntu"},  # exists: replaced
        {"op": "remove", "path": "/gone"},
        {"op": "replace", "path": "/min_ram", "value": 512},
        {"op": "replace", "path": "/tags", "value": ["x", "y"]},
    ]
    response = glance.patch(made["id"], ops)
    assert status(response) == 200, response.body
    body = response.json_body
    assert body["name"] == "renamed"
    assert body["hw_disk_bus"] == "virtio" and body["os_distro"] == "ubuntu"
    assert "gone" not in body
    assert body["min_ram"] == 512 and body["tags"] == ["x", "y"]
    assert body["updated_at"] >= made["updated_at"]
    assert body["created_at"] == made["created_at"]
    assert glance.show(made["id"]).json_body == body


def test_patch_20_add_on_an_existing_property_conflicts(glance: Glance) -> None:
    image_id = glance.create(os_distro="cirros")["id"]
    response = glance.patch(image_id, [{"add": "/os_distro", "value": "x"}], kind=PATCH_20)
    assert status(response) == 409
    assert glance.show(image_id).json_body["os_distro"] == "cirros"


def test_patch_21_needs_op_members(glance: Glance) -> None:
    image_id = glance.create()["id"]
    response = glance.patch(image_id, [{"replace": "/name", "value": "x"}], kind=PATCH_21)
    assert status(response) == 400


@pytest.mark.parametrize("op", ["replace", "remove"])
def test_patch_on_a_missing_property_conflicts(glance: Glance, op: str) -> None:
    image_id = glance.create()["id"]
    step: dict[str, Any] = {"op": op, "path": "/nothing_here"}
    if op == "replace":
        step["value"] = "v"
    assert status(glance.patch(image_id, [step])) == 409


@pytest.mark.parametrize(
    "step, code",
    [
        ({"op": "replace", "path": "/status", "value": "active"}, 403),
        ({"op": "replace", "path": "/size", "value": 5}, 403),
        ({"op": "add", "path": "/checksum", "value": "abc"}, 403),
        ({"op": "replace", "path": "/id", "value": str(uuid.uuid4())}, 403),
        ({"op": "add", "path": "/id", "value": str(uuid.uuid4())}, 403),
        ({"op": "add", "path": "/os_glance_thing", "value": "x"}, 403),
        ({"op": "add", "path": "/location", "value": "x"}, 403),
        ({"op": "remove", "path": "/name"}, 403),
        ({"op": "remove", "path": "/min_disk"}, 403),
        ({"op": "remove", "path": "/owner"}, 403),
        ({"op": "replace", "path": "/owner", "value": "beta"}, 403),
        ({"op": "add", "path": "/owner", "value": "beta"}, 403),
        ({"op": "add", "path": "/a/b", "value": "x"}, 400),
        ({"op": "add", "path": "name", "value": "x"}, 400),
        ({"op": "move", "path": "/name", "from": "/x"}, 400),
        ({"op": "replace", "path": "/name"}, 400),
        ({"op": "replace", "path": "/min_disk", "value": "big"}, 400),
        ({"op": "replace", "path": "/visibility", "value": "public"}, 403),
        ({"op": "add", "path": "/custom", "value": 5}, 400),
    ],
)
def test_patch_refusals(glance: Glance, step: dict[str, Any], code: int) -> None:
    made = glance.create(name="keep")
    response = glance.patch(made["id"], [{"op": "replace", "path": "/name", "value": "x"}, step])
    assert status(response) == code, response.body
    after = glance.show(made["id"]).json_body
    assert after["name"] == "keep" and after["owner"] == "alpha"
    assert after["id"] == made["id"]


def test_admin_may_change_the_owner(glance: Glance) -> None:
    image_id = glance.create()["id"]
    ops = [{"op": "replace", "path": "/owner", "value": "beta"}]
    response = glance.call(
        "PATCH", f"/v2/images/{image_id}", ops, role="admin", content_type=PATCH_21
    )
    assert status(response) == 200, response.body
    assert response.json_body["owner"] == "beta"
    assert "owner" not in glance.show(image_id, tenant="beta").json_body.get("properties", {})
    assert status(glance.show(image_id, tenant="beta")) == 200


def test_patch_by_a_non_owner_who_sees_it_is_403_else_404(glance: Glance) -> None:
    seen = glance.create(role="admin", visibility="community", name="c")["id"]
    hidden = glance.create(visibility="private")["id"]
    ops = [{"op": "replace", "path": "/name", "value": "mine"}]
    assert status(glance.patch(seen, ops, tenant="beta")) == 403
    assert status(glance.patch(hidden, ops, tenant="beta")) == 404
    assert glance.show(seen).json_body["name"] == "c"


def test_disk_format_of_an_active_image_cannot_change(glance: Glance) -> None:
    image_id = glance.create()["id"]
    queued = glance.patch(image_id, [{"op": "replace", "path": "/disk_format", "value": "qcow2"}])
    assert status(queued) == 200 and queued.json_body["disk_format"] == "qcow2"
    assert status(glance.upload(image_id, b"data")) == 204
    for name, value in (("disk_format", "raw"), ("container_format", "ovf")):
        response = glance.patch(image_id, [{"op": "replace", "path": f"/{name}", "value": value}])
        assert status(response) == 403, name
    assert glance.show(image_id).json_body["disk_format"] == "qcow2"


def test_patch_with_malformed_body_is_400(glance: Glance) -> None:
    image_id = glance.create()["id"]
    assert status(glance.patch(image_id, {"op": "replace"})) == 400
    assert status(glance.patch(image_id, ["replace"])) == 400


# --- tags -----------------------------------------------------------------------------------


def test_tags_put_and_delete(glance: Glance) -> None:
    image_id = glance.create(tags=["a"])["id"]
    assert status(glance.call("PUT", f"/v2/images/{image_id}/tags/b")) == 204
    assert status(glance.call("PUT", f"/v2/images/{image_id}/tags/b")) == 204
    assert glance.show(image_id).json_body["tags"] == ["a", "b"]
    assert status(glance.call("DELETE", f"/v2/images/{image_id}/tags/a")) == 204
    assert glance.show(image_id).json_body["tags"] == ["b"]
    assert status(glance.call("DELETE", f"/v2/images/{image_id}/tags/a")) == 404
    assert status(glance.call("PUT", f"/v2/images/{image_id}/tags/{'t' * 256}")) == 400
    assert status(glance.call("PUT", f"/v2/images/{image_id}/tags/c", tenant="beta")) == 404
    assert glance.show(image_id).json_body["tags"] == ["b"]


def test_tag_quota(glance: Glance) -> None:
    glance.kiln.configure(glance_tag_quota=2)
    response = glance.call("POST", "/v2/images", {"tags": ["a", "b", "c"]})
    assert status(response) == 413
    assert response.json_body["title"] == "Request Entity Too Large"
    image_id = glance.create(tags=["a", "b"])["id"]
    assert status(glance.call("PUT", f"/v2/images/{image_id}/tags/c")) == 413
    assert status(glance.call("PUT", f"/v2/images/{image_id}/tags/a")) == 204
    ops = [{"op": "add", "path": "/tags", "value": ["a", "b", "c"]}]
    assert status(glance.patch(image_id, ops)) == 413
    assert glance.show(image_id).json_body["tags"] == ["a", "b"]


def test_property_quota(glance: Glance) -> None:
    glance.kiln.configure(glance_property_quota=2)
    assert status(glance.call("POST", "/v2/images", {"a": "1", "b": "2", "c": "3"})) == 413
    image_id = glance.create(a="1", b="2", name="base fields do not count")["id"]
    response = glance.patch(image_id, [{"op": "add", "path": "/c", "value": "3"}])
    assert status(response) == 413
    assert "c" not in glance.show(image_id).json_body
    swap = [{"op": "remove", "path": "/a"}, {"op": "add", "path": "/c", "value": "3"}]
    assert status(glance.patch(image_id, swap)) == 200


# --- delete, protection, (de)activation ------------------------------------------------------


def test_protected_image_cannot_be_deleted_until_unprotected(glance: Glance) -> None:
    image_id = glance.create(protected=True)["id"]
    assert status(glance.call("DELETE", f"/v2/images/{image_id}")) == 403
    assert status(glance.show(image_id)) == 200
    unprotect = [{"op": "replace", "path": "/protected", "value": False}]
    assert glance.patch(image_id, unprotect).json_body["protected"] is False
    assert status(glance.call("DELETE", f"/v2/images/{image_id}", tenant="beta")) == 404
    assert status(glance.call("DELETE", f"/v2/images/{image_id}")) == 204
    assert status(glance.show(image_id)) == 404
    assert status(glance.call("DELETE", f"/v2/images/{image_id}")) == 404


def test_deactivate_and_reactivate(glance: Glance) -> None:
    image_id = glance.create()["id"]
    deactivate = f"/v2/images/{image_id}/actions/deactivate"
    reactivate = f"/v2/images/{image_id}/actions/reactivate"
    assert status(glance.call("POST", deactivate)) == 403  # queued
    assert glance.upload(image_id, b"data").status_code == 204
    assert status(glance.call("POST", deactivate, tenant="beta")) == 404
    assert status(glance.call("POST", deactivate)) == 204
    assert glance.show(image_id).json_body["status"] == "deactivated"
    assert status(glance.call("POST", deactivate)) == 204
    assert status(download(glance, image_id)) == 403
    assert download(glance, image_id, role="admin").body == b"data"
    assert status(glance.call("POST", reactivate)) == 204
    assert glance.show(image_id).json_body["status"] == "active"
    assert download(glance, image_id).body == b"data"


def download(glance: Glance, image_id: str, role: str = "user") -> Any:
    accept = "application/octet-stream, application/json"
    headers = glance.headers(role=role, Accept=accept)
    return glance.call("GET", f"/v2/images/{image_id}/file", headers=headers)


def test_a_non_owner_who_sees_an_image_may_not_change_it(glance: Glance) -> None:
    image_id = glance.create(role="admin", visibility="public", tags=["t"])["id"]
    path = f"/v2/images/{image_id}"
    assert status(glance.call("PUT", f"{path}/tags/x", tenant="beta")) == 403
    assert status(glance.call("DELETE", f"{path}/tags/t", tenant="beta")) == 403
    assert status(glance.call("DELETE", path, tenant="beta")) == 403
    assert status(glance.call("POST", f"{path}/actions/deactivate", tenant="beta")) == 403
    assert glance.show(image_id, tenant="beta").json_body["tags"] == ["t"]
