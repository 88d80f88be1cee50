"""Image members over HTTP: the owner shares a ``shared`` image with other tenants, each member
accepts or rejects it, and every other tenant never learns the image exists."""

from __future__ import annotations

from typing import Any

from tests.glance.conftest import Glance

OWNER, MEMBER, OTHER = "alpha", "beta", "gamma"


def members_of(image_id: str) -> str:
    return f"/v2/images/{image_id}/members"


def share(glance: Glance, image_id: str, member: str = MEMBER) -> Any:
    return glance.call("POST", members_of(image_id), {"member": member}, tenant=OWNER)


def set_status(glance: Glance, image_id: str, status: str, tenant: str = MEMBER) -> Any:
    return glance.call("PUT", f"{members_of(image_id)}/{MEMBER}", {"status": status}, tenant=tenant)


def listed_ids(glance: Glance, tenant: str, query: str = "") -> list[str]:
    response = glance.call("GET", f"/v2/images{query}", tenant=tenant)
    assert response.status_code == 200, response.body
    return [image["id"] for image in response.json_body["images"]]


def shared_image(glance: Glance) -> str:
    image = glance.create(name="shared-one", visibility="shared")
    assert image["visibility"] == "shared"
    return str(image["id"])


def test_owner_adds_a_pending_member(glance: Glance) -> None:
    image_id = shared_image(glance)
    response = share(glance, image_id)
    assert response.status_code == 200, response.body
    body = response.json_body
    assert body["image_id"] == image_id
    assert body["member_id"] == MEMBER
    assert body["status"] == "pending"
    assert body["schema"] == "/v2/schemas/member"
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")
    shown = glance.call("GET", f"{members_of(image_id)}/{MEMBER}", tenant=OWNER)
    assert shown.status_code == 200
    assert shown.json_body == body


def test_only_shared_images_have_members(glance: Glance) -> None:
    image_id = glance.create(visibility="private")["id"]
    response = share(glance, image_id)
    assert response.status_code == 403, response.body
    assert glance.call("GET", members_of(image_id), tenant=OWNER).status_code == 403


def test_a_duplicate_member_is_a_conflict(glance: Glance) -> None:
    image_id = shared_image(glance)
    assert share(glance, image_id).status_code == 200
    response = share(glance, image_id)
    assert response.status_code == 409, response.body
    assert response.json_body["code"] == "409 Conflict"


def test_member_quota(glance: Glance) -> None:
    glance.kiln.configure(glance_member_quota=2)
    image_id = shared_image(glance)
    assert share(glance, image_id, "m1").status_code == 200
    assert share(glance, image_id, "m2").status_code == 200
    response = share(glance, image_id, "m3")
    assert response.status_code == 413, response.body
    owner_view = glance.call("GET", members_of(image_id), tenant=OWNER).json_body
    assert sorted(m["member_id"] for m in owner_view["members"]) == ["m1", "m2"]


def test_member_body_must_name_a_member(glance: Glance) -> None:
    image_id = shared_image(glance)
    for body in ({}, {"member": ""}, ["beta"]):
        response = glance.call("POST", members_of(image_id), body, tenant=OWNER)
        assert response.status_code == 400, (body, response.body)


def test_only_the_owner_adds_members(glance: Glance) -> None:
    image_id = shared_image(glance)
    assert share(glance, image_id).status_code == 200
    # a member can see the image, so it is told it may not share it
    by_member = glance.call("POST", members_of(image_id), {"member": OTHER}, tenant=MEMBER)
    assert by_member.status_code == 403, by_member.body
    # a tenant that cannot see the image is not told it exists
    by_stranger = glance.call("POST", members_of(image_id), {"member": OTHER}, tenant=OTHER)
    assert by_stranger.status_code == 404, by_stranger.body
    owner_view = glance.call("GET", members_of(image_id), tenant=OWNER).json_body
    assert [m["member_id"] for m in owner_view["members"]] == [MEMBER]


def test_pending_member_sees_the_image_but_not_in_its_list(glance: Glance) -> None:
    image_id = shared_image(glance)
    assert image_id not in listed_ids(glance, MEMBER)
    assert glance.show(image_id, tenant=MEMBER).status_code == 404
    share(glance, image_id)
    shown = glance.show(image_id, tenant=MEMBER)
    assert shown.status_code == 200, shown.body
    assert shown.json_body["id"] == image_id
    assert image_id not in listed_ids(glance, MEMBER)
    assert image_id in listed_ids(glance, MEMBER, "?visibility=shared&member_status=pending")


def test_accepting_lists_the_image(glance: Glance) -> None:
    image_id = shared_image(glance)
    share(glance, image_id)
    response = set_status(glance, image_id, "accepted")
    assert response.status_code == 200, response.body
    assert response.json_body["status"] == "accepted"
    assert response.json_body["member_id"] == MEMBER
    assert image_id in listed_ids(glance, MEMBER)
    assert image_id in listed_ids(glance, MEMBER, "?visibility=shared")
    assert image_id not in listed_ids(glance, MEMBER, "?visibility=shared&member_status=pending")
    # the owner sees the member's answer
    owner_view = glance.call("GET", f"{members_of(image_id)}/{MEMBER}", tenant=OWNER)
    assert owner_view.json_body["status"] == "accepted"


def test_member_status_filters(glance: Glance) -> None:
    pending, accepted, rejected = (shared_image(glance) for _ in range(3))
    for image_id in (pending, accepted, rejected):
        assert share(glance, image_id).status_code == 200
    assert set_status(glance, accepted, "accepted").status_code == 200
    assert set_status(glance, rejected, "rejected").status_code == 200

    def shared(status: str | None) -> set[str]:
        query = "?visibility=shared" + (f"&member_status={status}" if status else "")
        return set(listed_ids(glance, MEMBER, query)) & {pending, accepted, rejected}

    assert shared(None) == {accepted}
    assert shared("accepted") == {accepted}
    assert shared("pending") == {pending}
    assert shared("rejected") == {rejected}
    assert shared("all") == {pending, accepted, rejected}
    assert set(listed_ids(glance, MEMBER)) & {pending, accepted, rejected} == {accepted}
    # a rejected image can still be read by id: rejecting only hides it from lists
    assert glance.show(rejected, tenant=MEMBER).status_code == 200
    # the owner's own list is not filtered by anyone's member status
    assert {pending, accepted, rejected} <= set(listed_ids(glance, OWNER, "?visibility=shared"))


def test_a_member_can_change_its_mind(glance: Glance) -> None:
    image_id = shared_image(glance)
    share(glance, image_id)
    assert set_status(glance, image_id, "accepted").status_code == 200
    assert set_status(glance, image_id, "rejected").json_body["status"] == "rejected"
    assert image_id not in listed_ids(glance, MEMBER)
    assert set_status(glance, image_id, "pending").json_body["status"] == "pending"


def test_bad_member_status_is_400(glance: Glance) -> None:
    image_id = shared_image(glance)
    share(glance, image_id)
    for body in ({"status": "maybe"}, {}, {"status": None}):
        response = glance.call("PUT", f"{members_of(image_id)}/{MEMBER}", body, tenant=MEMBER)
        assert response.status_code == 400, (body, response.body)


def test_owner_cannot_set_the_member_status(glance: Glance) -> None:
    image_id = shared_image(glance)
    share(glance, image_id)
    response = set_status(glance, image_id, "accepted", tenant=OWNER)
    assert response.status_code == 403, response.body
    shown = glance.call("GET", f"{members_of(image_id)}/{MEMBER}", tenant=OWNER)
    assert shown.json_body["status"] == "pending"
    assert image_id not in listed_ids(glance, MEMBER)


def test_a_member_cannot_set_another_members_status(glance: Glance) -> None:
    image_id = shared_image(glance)
    share(glance, image_id)
    share(glance, image_id, OTHER)
    # as Glance: the other membership is not found for this caller
    response = set_status(glance, image_id, "accepted", tenant=OTHER)
    assert response.status_code == 404, response.body
    shown = glance.call("GET", f"{members_of(image_id)}/{MEMBER}", tenant=OWNER)
    assert shown.json_body["status"] == "pending"


def test_a_stranger_gets_404_for_the_image_and_its_members(glance: Glance) -> None:
    image_id = shared_image(glance)
    share(glance, image_id)
    for method, path, body in (
        ("GET", f"/v2/images/{image_id}", None),
        ("GET", members_of(image_id), None),
        ("GET", f"{members_of(image_id)}/{MEMBER}", None),
        ("GET", f"{members_of(image_id)}/{OTHER}", None),
        ("PUT", f"{members_of(image_id)}/{OTHER}", {"status": "accepted"}),
        ("DELETE", f"{members_of(image_id)}/{MEMBER}", None),
    ):
        response = glance.call(method, path, body, tenant=OTHER)
        assert response.status_code == 404, (method, path, response.body)
    assert image_id not in listed_ids(glance, OTHER, "?visibility=shared&member_status=all")


def test_member_lists(glance: Glance) -> None:
    image_id = shared_image(glance)
    share(glance, image_id)
    share(glance, image_id, OTHER)
    owner_view = glance.call("GET", members_of(image_id), tenant=OWNER)
    assert owner_view.status_code == 200
    assert owner_view.json_body["schema"] == "/v2/schemas/members"
    assert sorted(m["member_id"] for m in owner_view.json_body["members"]) == [MEMBER, OTHER]
    member_view = glance.call("GET", members_of(image_id), tenant=MEMBER)
    assert member_view.status_code == 200
    assert [m["member_id"] for m in member_view.json_body["members"]] == [MEMBER]
    # a member reads its own membership, not another member's
    assert glance.call("GET", f"{members_of(image_id)}/{MEMBER}", tenant=MEMBER).status_code == 200
    assert glance.call("GET", f"{members_of(image_id)}/{OTHER}", tenant=MEMBER).status_code == 404
    assert glance.call("GET", f"{members_of(image_id)}/nobody", tenant=OWNER).status_code == 404


def test_admin_sees_every_member(glance: Glance) -> None:
    image_id = shared_image(glance)
    share(glance, image_id)
    share(glance, image_id, OTHER)
    admin_view = glance.call("GET", members_of(image_id), tenant="ops", role="admin")
    assert admin_view.status_code == 200
    assert len(admin_view.json_body["members"]) == 2
    # "only you (or an administrator)" may change your member status
    admin = glance.call(
        "PUT", f"{members_of(image_id)}/{MEMBER}", {"status": "accepted"}, "ops", "admin"
    )
    assert admin.status_code == 200, admin.body
    assert admin.json_body["status"] == "accepted"


def test_only_the_owner_removes_members(glance: Glance) -> None:
    image_id = shared_image(glance)
    share(glance, image_id)
    set_status(glance, image_id, "accepted")
    by_member = glance.call("DELETE", f"{members_of(image_id)}/{MEMBER}", tenant=MEMBER)
    assert by_member.status_code == 403, by_member.body
    assert glance.show(image_id, tenant=MEMBER).status_code == 200

    removed = glance.call("DELETE", f"{members_of(image_id)}/{MEMBER}", tenant=OWNER)
    assert removed.status_code == 204, removed.body
    assert removed.body in (b"", "")
    assert glance.show(image_id, tenant=MEMBER).status_code == 404
    assert glance.call("GET", members_of(image_id), tenant=MEMBER).status_code == 404
    assert image_id not in listed_ids(glance, MEMBER)
    assert image_id not in listed_ids(glance, MEMBER, "?visibility=shared&member_status=all")
    assert glance.call("GET", members_of(image_id), tenant=OWNER).json_body["members"] == []
    again = glance.call("DELETE", f"{members_of(image_id)}/{MEMBER}", tenant=OWNER)
    assert again.status_code == 404


def test_making_the_image_private_hides_it_from_members(glance: Glance) -> None:
    image_id = shared_image(glance)
    share(glance, image_id)
    set_status(glance, image_id, "accepted")
    assert image_id in listed_ids(glance, MEMBER)
    patched = glance.patch(image_id, [{"op": "replace", "path": "/visibility", "value": "private"}])
    assert patched.status_code == 200, patched.body
    assert glance.show(image_id, tenant=MEMBER).status_code == 404
    assert image_id not in listed_ids(glance, MEMBER)
    assert image_id not in listed_ids(glance, MEMBER, "?visibility=shared&member_status=all")
    assert glance.call("GET", members_of(image_id), tenant=MEMBER).status_code == 404
    # the owner is told a private image has no members
    assert glance.call("GET", members_of(image_id), tenant=OWNER).status_code == 403
    # sharing it again brings the accepted membership back
    glance.patch(image_id, [{"op": "replace", "path": "/visibility", "value": "shared"}])
    assert glance.show(image_id, tenant=MEMBER).status_code == 200
    assert image_id in listed_ids(glance, MEMBER)


def test_a_member_cannot_change_or_delete_the_image(glance: Glance) -> None:
    image_id = shared_image(glance)
    share(glance, image_id)
    set_status(glance, image_id, "accepted")
    patched = glance.patch(
        image_id, [{"op": "replace", "path": "/name", "value": "mine"}], tenant=MEMBER
    )
    assert patched.status_code == 403, patched.body
    deleted = glance.call("DELETE", f"/v2/images/{image_id}", tenant=MEMBER)
    assert deleted.status_code == 403, deleted.body
    assert glance.show(image_id).json_body["name"] == "shared-one"


def test_deleting_the_image_ends_its_memberships(glance: Glance) -> None:
    image_id = shared_image(glance)
    share(glance, image_id)
    set_status(glance, image_id, "accepted")
    assert glance.call("DELETE", f"/v2/images/{image_id}", tenant=OWNER).status_code == 204
    assert image_id not in listed_ids(glance, MEMBER, "?visibility=shared&member_status=all")
    assert glance.call("GET", members_of(image_id), tenant=MEMBER).status_code == 404
