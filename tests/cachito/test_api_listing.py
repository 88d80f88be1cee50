"""GET /api/v1/requests and /requests/latest over HTTP: newest first, paging and its meta links
(which carry every filter), the filters and their 400s in upstream's wording, the
``{"errors": ...}`` shape for unparseable dates, and tenant scoping."""

from __future__ import annotations

import datetime
import urllib.parse
from typing import Any

import pytest

from chalicelib.faces.cachito.routing import NOT_FOUND
from tests.cachito import helpers as h
from tests.cachito.helpers import REF, REPO, V1
from tests.conftest import Kiln

BASE = f"http://localhost{V1}/requests"


def ref(number: int) -> str:
    return f"{number:040x}"


def make(kiln: Kiln, count: int, **changes: Any) -> list[int]:
    return [int(h.create(kiln, ref=ref(i), **changes)["id"]) for i in range(count)]


def listed(kiln: Kiln, query: str = "", **options: Any) -> Any:
    response = h.get(kiln, f"/requests{query}", **options)
    assert response.status_code == 200, response.body
    return response.json_body


def ids(page: dict[str, Any]) -> list[int]:
    return [item["id"] for item in page["items"]]


def error(response: Any, status: int = 400) -> Any:
    assert response.status_code == status, response.body
    return response.json_body


def test_no_requests_is_one_empty_page(kiln: Kiln) -> None:
    assert listed(kiln) == {
        "items": [],
        "meta": {
            "first": f"{BASE}?page=1&per_page=10",
            "last": f"{BASE}?page=0&per_page=10",
            "next": None,
            "page": 1,
            "pages": 0,
            "per_page": 10,
            "previous": None,
            "total": 0,
        },
    }


def test_pages_newest_first_with_links(kiln: Kiln) -> None:
    made = make(kiln, 23)
    first = listed(kiln)
    assert ids(first) == made[::-1][:10]
    assert first["meta"] == {
        "first": f"{BASE}?page=1&per_page=10",
        "last": f"{BASE}?page=3&per_page=10",
        "next": f"{BASE}?page=2&per_page=10",
        "page": 1,
        "pages": 3,
        "per_page": 10,
        "previous": None,
        "total": 23,
    }
    last = listed(kiln, "?page=3")
    assert ids(last) == made[::-1][20:]
    assert last["meta"]["next"] is None
    assert last["meta"]["previous"] == f"{BASE}?page=2&per_page=10"
    assert ids(listed(kiln, "?per_page=5&page=2")) == made[::-1][5:10]
    capped = listed(kiln, "?per_page=1000")
    assert capped["meta"]["per_page"] == 100 and len(capped["items"]) == 23
    for query in ("?page=4", "?page=0", "?page=-1", "?per_page=0"):
        assert error(h.get(kiln, f"/requests{query}"), 404) == {"error": NOT_FOUND}


def test_following_next_keeps_every_filter(kiln: Kiln) -> None:
    wanted = make(kiln, 5, pkg_managers=["npm", "gomod"])
    make(kiln, 3, pkg_managers=["gomod"])
    query = (
        f"?per_page=2&state=in_progress&repo={urllib.parse.quote(REPO)}&pkg_manager=npm"
        "&pkg_manager=gomod&created_from=2000-01-01&error_type="
    )
    page = listed(kiln, query)
    seen = ids(page)
    while page["meta"]["next"]:
        link = page["meta"]["next"]
        assert link.startswith(BASE)
        page = listed(kiln, link[len(BASE) :])
        seen += ids(page)
    assert seen == wanted[::-1]
    params = urllib.parse.parse_qsl(urllib.parse.urlsplit(page["meta"]["first"]).query)
    assert params == [
        ("page", "1"),
        ("per_page", "2"),
        ("state", "in_progress"),
        ("repo", REPO),
        ("pkg_manager", "npm"),
        ("pkg_manager", "gomod"),
        ("created_from", "2000-01-01"),
    ]


def test_verbose_items_and_links(kiln: Kiln) -> None:
    made = make(kiln, 2)
    for query in ("?verbose=true", "?verbose=1", "?verbose=TRUE"):
        page = listed(kiln, query)
        assert page["items"][0] == h.get(kiln, f"/requests/{made[1]}").json_body
        assert page["meta"]["first"] == f"{BASE}?page=1&per_page=10&verbose=True"
    plain = listed(kiln, "?verbose=false")
    assert "state_history" not in plain["items"][0]
    assert plain["items"][0]["packages"] is None and plain["items"][0]["dependencies"] is None
    assert "verbose" not in plain["meta"]["first"]


def test_filters(kiln: Kiln) -> None:
    npm = h.create(kiln, pkg_managers=["npm"])["id"]
    both = h.create(kiln, pkg_managers=["npm", "pip"], ref=ref(1))["id"]
    other_repo = h.create(kiln, repo="https://github.com/org/other", ref=ref(2))["id"]
    h.complete(kiln, npm)
    assert ids(listed(kiln, "?state=complete")) == [npm]
    assert ids(listed(kiln, "?state=in_progress")) == [other_repo, both]
    assert ids(listed(kiln, "?pkg_manager=npm")) == [both, npm]
    assert ids(listed(kiln, "?pkg_manager=npm&pkg_manager=pip")) == [both]
    assert ids(listed(kiln, "?pkg_manager=")) == [other_repo, both, npm]  # empty: ignored
    assert ids(listed(kiln, f"?ref={REF}")) == [npm]
    assert ids(listed(kiln, "?repo=https://github.com/org/other")) == [other_repo]
    assert ids(listed(kiln, "?error_origin=client")) == []


def test_created_from_and_to(kiln: Kiln) -> None:
    made = make(kiln, 2)
    today = datetime.datetime.now(datetime.UTC).date()
    tomorrow, yesterday = today + datetime.timedelta(days=1), today - datetime.timedelta(days=1)
    assert ids(listed(kiln, f"?created_from={today}")) == made[::-1]
    assert ids(listed(kiln, f"?created_to={today}")) == made[::-1]  # the whole day
    assert ids(listed(kiln, f"?created_from={tomorrow}")) == []
    assert ids(listed(kiln, f"?created_to={yesterday}")) == []
    hour_ago = int(datetime.datetime.now(datetime.UTC).timestamp()) - 3600
    assert ids(listed(kiln, f"?created_from={hour_ago}")) == made[::-1]  # unix time
    assert ids(listed(kiln, f"?created_to={hour_ago}")) == []
    assert ids(listed(kiln, f"?created_from={yesterday}T12:00:00")) == made[::-1]
    assert ids(listed(kiln, f"?created_to={yesterday}T23:00:00%2B00:00")) == []


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ("?created_from=tom_hanks", {"created_from": "invalid date format"}),
        ("?created_to=2011-20-04", {"created_to": "invalid date format"}),
        (
            "?created_from=2011-01-01T24:00:00&created_to=x",
            {"created_from": "invalid date format", "created_to": "invalid date format"},
        ),
    ],
)
def test_unparseable_dates_name_each_field(kiln: Kiln, query: str, errors: dict[str, str]) -> None:
    assert error(h.get(kiln, f"/requests{query}")) == {"errors": errors}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?tom_hanks=tom_hanks", "Extra query parameter(s) tom_hanks not in spec"),
        ("?a=1&b=2&a=3", "Extra query parameter(s) a, b not in spec"),
        ("?per_page=abc", "Wrong type, expected 'integer' for query parameter 'per_page'"),
        ("?page=1.5", "Wrong type, expected 'integer' for query parameter 'page'"),
        ("?verbose=maybe", "Wrong type, expected 'boolean' for query parameter 'verbose'"),
        (
            "?state=complet",
            "'complet' is not one of ['in_progress', 'complete', 'failed', 'stale']",
        ),
        ("?ref=abc", "'abc' is too short"),
        (f"?ref={REF.upper()}", f"'{REF.upper()}' does not match '^[a-f0-9]{{40}}$'"),
        (f"?repo={'x' * 201}", f"'{'x' * 201}' is too long"),
        (
            "?pkg_manager=npm&pkg_manager=cargo",
            "'cargo' is not one of ['gomod', 'npm', 'pip', 'git-submodule', 'yarn', 'rubygems']",
        ),
        ("?error_origin=user", "'user' is not one of ['client', 'server']"),
    ],
)
def test_query_refusals(kiln: Kiln, query: str, message: str) -> None:
    assert error(h.get(kiln, f"/requests{query}")) == {"error": message}


def test_users_see_their_tenant_admins_and_workers_see_all(kiln: Kiln) -> None:
    mine = make(kiln, 2)
    theirs = h.create(kiln, tenant="beta", ref=ref(9))["id"]
    assert ids(listed(kiln)) == mine[::-1]
    assert ids(listed(kiln, tenant="beta")) == [theirs]
    assert listed(kiln, tenant="gamma")["meta"]["total"] == 0
    for role in ("admin", "worker"):
        assert ids(listed(kiln, tenant="gamma", role=role)) == [theirs, *mine[::-1]]


def test_listing_needs_a_token(kiln: Kiln) -> None:
    response = kiln.call("GET", f"{V1}/requests", headers={})
    assert response.status_code == 401 and "could not verify" in response.json_body["error"]


# -- /requests/latest -------------------------------------------------------------------------
def latest(kiln: Kiln, repo_name: str, ref_: str = REF, **options: Any) -> Any:
    query = urllib.parse.urlencode({"repo_name": repo_name, "ref": ref_})
    return h.get(kiln, f"/requests/latest?{query}", **options)


def test_latest_is_the_highest_id_for_the_repository_name_and_ref(kiln: Kiln) -> None:
    h.create(kiln)
    newer = h.create(kiln, repo="https://github.com/release-engineering/retrodep")["id"]
    h.create(kiln, repo="https://gitlab.com/release-engineering/retrodep.git", ref=ref(1))
    h.create(kiln, repo="https://github.com/other/retrodep.git", ref=ref(2))
    h.create(kiln, repo="https://github.com/x/release-engineering/retrodep.git", ref=ref(3))
    found = latest(kiln, "release-engineering/retrodep")
    assert found.status_code == 200, found.body
    assert found.json_body["id"] == newer
    assert "configuration_files" not in found.json_body  # non-verbose
    assert found.json_body["packages"] is None
    host = h.create(kiln, repo="https://gitlab.com/release-engineering/retrodep.git")["id"]
    assert latest(kiln, "release-engineering/retrodep").json_body["id"] == host
    assert error(latest(kiln, "release-engineering/retrodep", ref(7)), 404) == {"error": NOT_FOUND}
    assert error(latest(kiln, "retrodep/nope"), 404) == {"error": NOT_FOUND}
    assert error(latest(kiln, "release-engineering/retrodep", tenant="beta"), 404)
    assert (
        latest(kiln, "release-engineering/retrodep", tenant="beta", role="admin").json_body["id"]
        == host
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (f"?ref={REF}", "Missing query parameter 'repo_name'"),
        ("?repo_name=a/b", "Missing query parameter 'ref'"),
        (f"?repo_name=a&ref={REF}", "'a' is too short"),
        (f"?repo_name=abcd&ref={REF}", "'abcd' does not match '^.*\\\\/[\\\\w.-]+$'"),
        ("?repo_name=a/b&ref=abc", "'abc' is too short"),
        (f"?repo_name=a/b&ref={REF}&verbose=1", "Extra query parameter(s) verbose not in spec"),
    ],
)
def test_latest_refusals(kiln: Kiln, query: str, message: str) -> None:
    assert error(h.get(kiln, f"/requests/latest{query}")) == {"error": message}
