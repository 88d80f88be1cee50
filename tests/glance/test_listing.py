"""GET /v2/images: order, paging by marker and ``next`` links, sort, filters and who sees what,
as the api-ref (images-images-v2.inc, "List images") and Glance's code answer them."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from tests.glance.conftest import Glance


def listed(glance: Glance, query: str = "", tenant: str = "alpha", role: str = "user") -> Any:
    path = "/v2/images" + (f"?{query}" if query else "")
    response = glance.call("GET", path, tenant=tenant, role=role)
    assert response.status_code == 200, (query, response.body)
    return response.json_body


def ids(glance: Glance, query: str = "", tenant: str = "alpha", role: str = "user") -> list[str]:
    return [i["id"] for i in listed(glance, query, tenant, role)["images"]]


def status_of(glance: Glance, query: str, role: str = "user") -> int:
    return int(glance.call("GET", f"/v2/images?{query}", role=role).status_code)


def made(glance: Glance, *names: str, **fields: Any) -> list[str]:
    return [glance.create(name=name, **fields)["id"] for name in names]


# --- order and paging -----------------------------------------------------------------------


def test_default_order_is_newest_first(glance: Glance) -> None:
    first, second, third = made(glance, "a", "b", "c")
    body = listed(glance)
    assert [i["id"] for i in body["images"]] == [third, second, first]
    assert body["schema"] == "/v2/schemas/images"
    assert body["first"] == "/v2/images"
    assert "next" not in body


def test_paging_follows_next_links_exactly(glance: Glance) -> None:
    every = made(glance, *"abcde", tags=["t1", "t2"])
    made(glance, "untagged")
    url = "/v2/images?limit=2&tag=t1&tag=t2"
    pages = []
    while url:
        response = glance.call("GET", url)
        assert response.status_code == 200, response.body
        body = response.json_body
        pages.append([i["id"] for i in body["images"]])
        query = urllib.parse.parse_qs(urllib.parse.urlparse(body["first"]).query)
        assert query == {"limit": ["2"], "tag": ["t1", "t2"]}
        url = body.get("next")
        if url:
            assert urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["tag"] == ["t1", "t2"]
    assert pages == [every[4:2:-1], every[2:0:-1], every[0:1]]


def test_a_full_last_page_has_no_next(glance: Glance) -> None:
    made(glance, "a", "b")
    assert "next" not in listed(glance, "limit=2")
    assert "next" in listed(glance, "limit=1")


def test_marker_pages_by_hand(glance: Glance) -> None:
    a, b, c = made(glance, "a", "b", "c")
    assert ids(glance, f"limit=1&marker={c}") == [b]
    assert ids(glance, f"marker={b}") == [a]
    assert ids(glance, f"marker={a}") == []


@pytest.mark.parametrize("marker", ["nope", "12345678-1234-1234-1234-1234567890ab"])
def test_unknown_marker_is_400(glance: Glance, marker: str) -> None:
    made(glance, "a")
    assert status_of(glance, f"marker={marker}") == 400
    assert status_of(glance, f"marker={marker}&sort=name:asc") == 400


def test_marker_of_another_tenants_private_image_is_400(glance: Glance) -> None:
    (theirs,) = made(glance.__class__(glance.kiln), "x", visibility="private", tenant="beta")
    assert status_of(glance, f"marker={theirs}") == 400


@pytest.mark.parametrize("limit", ["-1", "x", "1.5"])
def test_bad_limit_is_400(glance: Glance, limit: str) -> None:
    assert status_of(glance, f"limit={limit}") == 400


# --- sort -----------------------------------------------------------------------------------


def test_sort_by_several_keys(glance: Glance) -> None:
    b1 = glance.create(name="b")["id"]
    a = glance.create(name="a")["id"]
    b2 = glance.create(name="b")["id"]
    glance.upload(b1, b"four")
    glance.upload(b2, b"sixsix")
    assert ids(glance, "sort=name:asc,size:desc") == [a, b2, b1]
    assert ids(glance, "sort=name:desc,size:asc") == [b1, b2, a]
    assert ids(glance, "sort_key=name&sort_dir=asc&sort_key=size&sort_dir=desc") == [a, b2, b1]
    assert ids(glance, "sort=name") == [b2, b1, a]  # desc by default, ties newest first
    assert ids(glance, "sort_key=name&sort_dir=asc") == [a, b1, b2]  # ties: the one dir given
    assert ids(glance, "sort_dir=asc") == [b1, a, b2]


def test_sort_pages_with_marker(glance: Glance) -> None:
    c, a, b = made(glance, "c", "a", "b")
    first = listed(glance, "sort=name:asc&limit=2")
    assert [i["id"] for i in first["images"]] == [a, b]
    assert ids(glance, first["next"].split("?", 1)[1]) == [c]


@pytest.mark.parametrize(
    "query",
    [
        "sort_key=nope",
        "sort_key=owner",
        "sort_dir=up",
        "sort=name:up",
        "sort=bogus:asc",
        "sort=name:asc&sort_key=name",
        "sort=name&sort_dir=asc",
        "sort_key=name&sort_key=size&sort_dir=asc&sort_dir=desc&sort_dir=asc",
    ],
)
def test_bad_sort_is_400(glance: Glance, query: str) -> None:
    assert status_of(glance, query) == 400


# --- filters --------------------------------------------------------------------------------


def test_filter_by_name_status_and_in(glance: Glance) -> None:
    glass, share, other = made(glance, "glass, darkly", "share me", "other")
    glance.upload(other, b"x")
    assert ids(glance, "name=other") == [other]
    assert ids(glance, "status=active") == [other]
    assert ids(glance, "status=in:queued,saving") == [share, glass]
    quoted = urllib.parse.quote('in:"glass, darkly",share me')
    assert ids(glance, f"name={quoted}") == [share, glass]
    assert ids(glance, "name=in:glass,share") == []
    assert ids(glance, f"id=in:{glass},{other}") == [other, glass]


def test_filter_by_visibility_and_bad_visibility(glance: Glance) -> None:
    private, shared = made(glance, "p", visibility="private") + made(glance, "s")
    public = glance.create(role="admin", visibility="public")["id"]
    community = glance.create(role="admin", visibility="community")["id"]
    assert ids(glance, "visibility=private") == [private]
    assert ids(glance, "visibility=shared") == [shared]
    assert ids(glance, "visibility=public") == [public]
    assert ids(glance, "visibility=community") == [community]
    # the admin made both in "alpha": an owner's own community image is in its default list
    assert ids(glance) == [community, public, shared, private]
    assert ids(glance, tenant="beta") == [public]
    assert ids(glance, "visibility=all") == [community, public, shared, private]
    assert status_of(glance, "visibility=everyone") == 400


def test_filter_by_owner_protected_and_hidden(glance: Glance) -> None:
    plain = glance.create(name="plain")["id"]
    guarded = glance.create(protected=True)["id"]
    hidden = glance.create(os_hidden=True)["id"]
    public = glance.create(tenant="beta", role="admin", visibility="public")["id"]
    assert ids(glance, "owner=beta") == [public]
    assert ids(glance, "owner=alpha") == [guarded, plain]
    assert ids(glance, "protected=true") == [guarded]
    assert ids(glance, "protected=false") == [public, plain]
    assert ids(glance, "os_hidden=true") == [hidden]
    assert ids(glance, "os_hidden=false") == [public, guarded, plain]
    for bad in ("protected=True", "protected=1", "os_hidden=maybe", "member_status=x"):
        assert status_of(glance, bad) == 400, bad


def test_tags_filter_is_conjunctive(glance: Glance) -> None:
    both = glance.create(tags=["x", "y"])["id"]
    only_x = glance.create(tags=["x"])["id"]
    glance.create(tags=["y"])
    assert ids(glance, "tag=x") == [only_x, both]
    assert ids(glance, "tag=x&tag=y") == [both]
    assert ids(glance, "tag=z") == []


def test_size_filters(glance: Glance) -> None:
    small, large, empty = made(glance, "small", "large", "empty")
    glance.upload(small, b"12")
    glance.upload(large, b"1234567890")
    assert ids(glance, "size_min=3") == [large]
    assert ids(glance, "size_max=3") == [small]
    assert ids(glance, "size_min=2&size_max=10") == [large, small]
    assert empty not in ids(glance, "size_min=0")
    for bad in ("size_min=x", "size_max=-1", "size_min=5&size_max=2"):
        assert status_of(glance, bad) == 400, bad


def test_custom_property_filter(glance: Glance) -> None:
    cirros = glance.create(os_distro="cirros")["id"]
    glance.create(os_distro="ubuntu")
    glance.create()
    assert ids(glance, "os_distro=cirros") == [cirros]


@pytest.mark.parametrize("field", ["created_at", "updated_at"])
def test_time_filters(glance: Glance, field: str) -> None:
    image = glance.create()
    stamp = image[field]
    assert ids(glance, f"{field}=gt:2000-01-01T00:00:00Z") == [image["id"]]
    assert ids(glance, f"{field}=lt:2000-01-01T00:00:00Z") == []
    assert ids(glance, f"{field}=gte:{stamp}") == [image["id"]]
    assert ids(glance, f"{field}=lte:{stamp}") == [image["id"]]
    assert ids(glance, f"{field}=eq:{stamp}") == [image["id"]]
    assert ids(glance, f"{field}={stamp}") == [image["id"]]
    assert ids(glance, f"{field}=neq:{stamp}") == []
    assert ids(glance, f"{field}=gt:{stamp}") == []
    assert ids(glance, f"{field}=lt:{stamp}") == []
    assert ids(glance, f"{field}=lt:2999-01-01T00:00:00%2B05:00") == [image["id"]]
    for bad in (f"{field}=bogus:{stamp}", f"{field}=gt:yesterday", f"{field}=gt:"):
        assert status_of(glance, bad) == 400, bad


def test_changes_since_is_gone_in_v2(glance: Glance) -> None:
    assert status_of(glance, "changes-since=2000-01-01T00:00:00Z") == 400


# --- who sees what --------------------------------------------------------------------------


def test_other_tenants_see_public_but_not_private_or_shared(glance: Glance) -> None:
    glance.create(visibility="private")
    glance.create(visibility="shared")
    public = glance.create(role="admin", visibility="public")["id"]
    community = glance.create(role="admin", visibility="community")["id"]
    assert ids(glance, tenant="beta") == [public]
    assert ids(glance, "visibility=private", tenant="beta") == []
    assert ids(glance, "visibility=shared", tenant="beta") == []
    assert ids(glance, "visibility=community", tenant="beta") == [community]
    assert ids(glance, "visibility=all", tenant="beta") == [community, public]


def test_admin_sees_all_but_others_community_by_default(glance: Glance) -> None:
    mine = glance.create(visibility="private")["id"]
    theirs = glance.create(tenant="beta", visibility="shared")["id"]
    community = glance.create(tenant="beta", visibility="community")["id"]
    assert ids(glance, tenant="gamma", role="admin") == [theirs, mine]
    assert ids(glance, "visibility=all", tenant="gamma", role="admin") == [community, theirs, mine]
    assert ids(glance, "visibility=community", tenant="gamma", role="admin") == [community]
    assert ids(glance, "owner=beta", tenant="gamma", role="admin") == [theirs]


def test_shared_images_follow_member_status(glance: Glance) -> None:
    shared = glance.create(name="s")["id"]
    added = glance.call("POST", f"/v2/images/{shared}/members", {"member": "beta"})
    assert added.status_code == 200, added.body
    assert ids(glance, tenant="beta") == []
    assert ids(glance, "member_status=pending", tenant="beta") == [shared]
    assert ids(glance, "member_status=all", tenant="beta") == [shared]
    accept = glance.call(
        "PUT", f"/v2/images/{shared}/members/beta", {"status": "accepted"}, tenant="beta"
    )
    assert accept.status_code == 200, accept.body
    assert ids(glance, tenant="beta") == [shared]
    assert ids(glance, "visibility=shared", tenant="beta") == [shared]
    assert ids(glance, "member_status=pending", tenant="beta") == []
