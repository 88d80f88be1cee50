"""The Glance face under hostile requests no generator is likely to find: odd path parameters
(image ids, tags, member ids), list queries, Range and Accept headers, bodies cut short on the
streaming routes, odd headers. Each gets a 4xx in Glance's format, never a 5xx. Tests named
"It was a 500" in their docstring pin a fix."""

from __future__ import annotations

import json
import socket
import urllib.parse
from typing import Any

import pytest
import requests

from chalicelib.adapters.glance_models import GlanceMemberModel
from tests.glance.http_support import (
    DATA,
    PATCH_21,
    UNKNOWN,
    GlanceHttp,
    glance_error,
)


@pytest.fixture(scope="module")
def active(served: GlanceHttp) -> str:
    """An image of alpha's with data and member beta, which the fuzzer never draws."""
    image = served.image()
    served.upload(image)
    added = served.request("POST", f"/v2/images/{image}/members", {"member": "beta"})
    assert added.status_code == 200, added.text
    return image


# -- hostile path parameters ------------------------------------------------------------------

ODD_IDS = {
    "3,000 characters": "a" * 3000,
    "3,000 hex digits": "f" * 3000,
    "a UUID and more": UNKNOWN + "0",
    "a UUID, newline": UNKNOWN + "%0A",
    "a UUID, NUL": UNKNOWN + "%00",
    "NUL": "%00",
    "dots": "..%2E",
    "encoded slash": "..%2F..%2Fv2%2Fimages",
    "percent": "%25",
    "quote": "%27%20OR%20%271%27=%271",
    "right-to-left override": "%E2%80%AE" + UNKNOWN,
    "encoded surrogate": "%ED%A0%80",
    "bad percent-encoding": "%G0%",
    "emoji, long": "%F0%9F%92%A9" * 500,
    "upper case UUID": UNKNOWN.upper(),
    "UUID without dashes": UNKNOWN.replace("-", ""),
}
#: every operation on an image, each with a body it would take
ON_AN_IMAGE: list[tuple[str, str, Any, str]] = [
    ("GET", "", None, "application/json"),
    ("PATCH", "", [{"op": "replace", "path": "/name", "value": "x"}], PATCH_21),
    ("DELETE", "", None, "application/json"),
    ("PUT", "/tags/t", None, "application/json"),
    ("DELETE", "/tags/t", None, "application/json"),
    ("POST", "/actions/deactivate", None, "application/json"),
    ("POST", "/actions/reactivate", None, "application/json"),
    ("POST", "/members", {"member": "beta"}, "application/json"),
    ("GET", "/members", None, "application/json"),
    ("GET", "/members/beta", None, "application/json"),
    ("PUT", "/members/beta", {"status": "accepted"}, "application/json"),
    ("DELETE", "/members/beta", None, "application/json"),
    ("PUT", "/file", b"data", "application/octet-stream"),
    ("GET", "/file", None, "application/json"),
    ("PUT", "/stage", b"data", "application/octet-stream"),
    ("POST", "/import", {"method": {"name": "glance-direct"}}, "application/json"),
    ("POST", "/direct-upload", {"parts": 1}, "application/json"),
    ("POST", "/direct-upload/complete", {"parts": [{"part_number": 1, "etag": "e"}]}, "x/y"),
    ("DELETE", "/direct-upload", None, "application/json"),
]


@pytest.mark.parametrize("odd", list(ODD_IDS))
def test_an_odd_image_id_is_404_everywhere(served: GlanceHttp, odd: str) -> None:
    for base in (served.front, served.chalice):
        for method, rest, body, kind in ON_AN_IMAGE:
            path = f"/v2/images/{ODD_IDS[odd]}{rest}"
            response = served.request(method, path, body, content_type=kind, base=base)
            error = glance_error(response)
            assert response.status_code == 404, (method, path, error)


def test_odd_image_ids_through_chalice_s_decoded_parameters(served: GlanceHttp) -> None:
    """API Gateway hands the views their path parameters decoded (chalice's local server does
    not); chalice's test client does the same."""
    http = served.kiln.client.http
    for odd in ("a" * 3000, UNKNOWN + "\n", "\x00", "../..", "\ud800", UNKNOWN + "\u202e"):
        quoted = urllib.parse.quote(odd, safe="", errors="surrogatepass")
        for method, rest, body, kind in ON_AN_IMAGE:
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers = {**served.headers(), "Content-Type": kind}
            response = http.request(
                method, f"/v2/images/{quoted}{rest}", headers=headers, body=payload
            )
            assert response.status_code == 404, (method, rest, response.body[:300])


#: tag -> the status of PUT, or None where it depends on whether the path comes decoded (API
#: Gateway, chalice's test client) or not (the local servers)
ODD_TAGS: dict[str, tuple[str, int | None]] = {
    "256 characters": ("t" * 256, 400),
    "3,000 characters": ("t" * 3000, 400),
    "blank": ("%20%20", None),
    "NUL": ("%00", None),
    "encoded slash": ("a%2Fb", None),
    "encoded surrogate": ("%ED%A0%80", None),
    "bad percent-encoding": ("%G0%", None),
    "255 emoji": ("%F0%9F%92%A9" * 255, None),
}


@pytest.mark.parametrize("odd", list(ODD_TAGS))
def test_an_odd_tag_in_the_path(served: GlanceHttp, odd: str) -> None:
    tag, put_status = ODD_TAGS[odd]
    image = served.image()
    path = f"/v2/images/{image}/tags/{tag}"
    for base in (served.front, served.chalice):
        for method in ("PUT", "DELETE", "DELETE"):  # the second DELETE: no such tag (404)
            response = served.request(method, path, base=base)
            if response.status_code >= 400:
                glance_error(response)
            else:
                assert response.status_code == 204, response.text
            if method == "PUT" and put_status is not None:
                assert response.status_code == put_status, response.text
    for method in ("PUT", "DELETE"):
        decoded = served.kiln.client.http.request(method, path, headers=served.headers(), body=b"")
        assert decoded.status_code in (204, 400, 404), decoded.body[:300]


@pytest.mark.parametrize("member", ["m" * 256, "m" * 1025, "m" * 2000, "%F0%9F%92%A9" * 300])
def test_an_odd_member_id_in_the_path_is_404(served: GlanceHttp, active: str, member: str) -> None:
    """It was a 500 on DynamoDB (not moto): a member lookup whose sort key passes 1,024 bytes
    is refused, not missed."""
    for base in (served.front, served.chalice):
        for method, body in (("GET", None), ("PUT", {"status": "accepted"}), ("DELETE", None)):
            response = served.request(
                method, f"/v2/images/{active}/members/{member}", body, base=base
            )
            glance_error(response, 404)


def test_dynamodb_s_sort_key_limit_is_emulated(served: GlanceHttp) -> None:
    """What the test above relies on: a member looked up by an id of more than 1,024 bytes
    fails, as on DynamoDB (moto finds nothing)."""
    with pytest.raises(Exception, match="exceeds the maximum allowed size"):
        GlanceMemberModel.get(UNKNOWN, "m" * 1025)


# -- hostile query parameters -----------------------------------------------------------------

QUERIES: dict[str, tuple[dict[str, Any] | list[tuple[str, str]], int]] = {
    "limit -1": ({"limit": "-1"}, 400),
    "limit not a number": ({"limit": "ten"}, 400),
    "limit fractional": ({"limit": "1.5"}, 400),
    "limit in exponent form": ({"limit": "1e3"}, 400),
    "limit of 5,000 digits": ({"limit": "9" * 5000}, 400),
    "limit empty": ({"limit": ""}, 400),
    "limit huge": ({"limit": str(2**64)}, 200),
    "limit 0": ({"limit": "0"}, 200),
    "limit in other digits": ({"limit": "١٠"}, 200),
    "marker garbage": ({"marker": "garbage"}, 400),
    "marker unknown": ({"marker": UNKNOWN}, 400),
    "marker 3,000 characters": ({"marker": "a" * 3000}, 400),
    "marker with a newline": ({"marker": UNKNOWN + "\n"}, 400),
    "sort key unknown": ({"sort": "owner"}, 400),
    "sort direction odd": ({"sort": "name:sideways"}, 400),
    "sort empty": ({"sort": ""}, 400),
    "sort of 1,000 keys": ({"sort": "name:asc," * 1000}, 400),
    "sort, colons": ({"sort": ":::"}, 400),
    "sort and sort_key": ({"sort": "name", "sort_key": "name"}, 400),
    "sort_key with sort_dir": ([("sort_key", "name"), ("sort_dir", "asc")], 200),
    "sort_dirs not matching": (
        [("sort_key", "name"), ("sort_dir", "asc"), ("sort_dir", "desc")],
        400,
    ),
    "sort_key unknown": ({"sort_key": "__class__"}, 400),
    "sort_dir odd": ({"sort_dir": "up"}, 400),
    "created_at no time": ({"created_at": "gt:"}, 400),
    "created_at odd operator": ({"created_at": "xx:2020-01-01"}, 400),
    "created_at garbage": ({"created_at": "yesterday"}, 400),
    "created_at in:": ({"created_at": "in:2020-01-01,2021-01-01"}, 400),
    "created_at far future": ({"created_at": "lt:9999-12-31T23:59:59-23:59"}, 200),
    "created_at far past": ({"created_at": "gt:0001-01-01T00:00:00+23:59"}, 200),
    "created_at month 13": ({"updated_at": "gte:2020-13-01"}, 400),
    "created_at 5,000 digits": ({"created_at": "9" * 5000}, 400),
    "size_min -1": ({"size_min": "-1"}, 400),
    "size_min garbage": ({"size_min": "big"}, 400),
    "size_max of 5,000 digits": ({"size_max": "9" * 5000}, 400),
    "size_min above size_max": ({"size_min": "2", "size_max": "1"}, 400),
    "protected yes": ({"protected": "yes"}, 400),
    "os_hidden maybe": ({"os_hidden": "maybe"}, 400),
    "visibility everyone": ({"visibility": "everyone"}, 400),
    "member_status odd": ({"member_status": "maybe"}, 400),
    "changes-since": ({"changes-since": "2020-01-01"}, 400),
    "name in: empty": ({"name": "in:"}, 400),
    "name in: unclosed quote": ({"name": 'in:"open'}, 400),
    "id in: commas": ({"id": "in:,,,"}, 400),
    "status in: 1,000 values": ({"status": "in:" + ",".join(["active"] * 1000)}, 200),
    "owner 3,000 characters": ({"owner": "o" * 3000}, 200),
    "tag 3,000 characters": ({"tag": "t" * 3000}, 200),
    "a custom filter named NUL": ({"\x00": "x"}, 200),
    "a custom filter of 3,000 characters": ({"p" * 3000: "v" * 3000}, 200),
    "every filter at once": (
        {
            "name": "x",
            "status": "in:queued,active",
            "visibility": "all",
            "member_status": "all",
            "owner": "alpha",
            "tag": "seed",
            "size_min": "0",
            "size_max": "1",
            "protected": "false",
            "os_hidden": "false",
            "created_at": "gte:2000-01-01",
            "updated_at": "lt:9999-01-01",
            "disk_format": "in:raw,qcow2",
            "container_format": "bare",
            "id": f"in:{UNKNOWN},{UNKNOWN.upper()}",
            "min_disk": "0",
            "kiln_note": "x",
            "limit": "1",
            "sort": "size:asc,name:desc",
        },
        200,
    ),
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_an_odd_list_query(served: GlanceHttp, active: str, name: str) -> None:
    params, status = QUERIES[name]
    response = served.request("GET", "/v2/images", params=params)
    if status >= 400:
        glance_error(response, status)
    else:
        assert response.status_code == status, response.text[:500]
        assert isinstance(response.json()["images"], list)


# -- hostile Range and Accept headers on GET /file --------------------------------------------

RANGES = {
    "5,000 digits, open": ("bytes=" + "9" * 5000 + "-", 416),
    "5,000 digits, closed": ("bytes=0-" + "9" * 5000, 206),
    "5,000-digit suffix": ("bytes=-" + "9" * 5000, 206),
    "first after last": ("bytes=5-2", 416),
    "past the end": (f"bytes={len(DATA)}-", 416),
    "empty suffix": ("bytes=-0", 416),
    "two ranges": ("bytes=0-1,3-4", 416),
    "no numbers": ("bytes=-", 416),
    "not bytes": ("items=0-1", 416),
    "garbage": ("garbage", 416),
    "negative": ("bytes=--1", 416),
    "superscript digits": ("bytes=²-", 416),
    "spaces": ("bytes = 1 - 2", 206),
    "the last byte": (f"bytes={len(DATA) - 1}-", 206),
}


@pytest.mark.parametrize("name", list(RANGES))
def test_an_odd_range(served: GlanceHttp, active: str, name: str) -> None:
    header, status = RANGES[name]
    for base in (served.front, served.chalice):
        response = served.request(
            "GET",
            f"/v2/images/{active}/file",
            headers={"Range": header, "Accept": "*/*, application/json"},
            base=base,
        )
        if status >= 400:
            glance_error(response, status)
        else:
            assert response.status_code == status, response.text[:300]
            assert response.content == DATA[_first(response) :][: len(response.content)]


def _first(response: requests.Response) -> int:
    return int(response.headers["Content-Range"].split()[1].split("-")[0])


@pytest.mark.parametrize("accept", [None, "application/json", "text/plain", "text/html;q=0.9"])
def test_a_download_that_does_not_accept_bytes_is_redirected(
    served: GlanceHttp, active: str, accept: str | None
) -> None:
    """It was a 500 from the Chalice route (what runs behind API Gateway): Chalice refuses to
    answer bytes to a request whose Accept names no binary type, and its refusal became a 500."""
    sent = {"X-Auth-Token": served.token(), "Accept": accept}  # None: no Accept at all
    response = requests.get(
        f"{served.chalice}/v2/images/{active}/file",
        headers=sent,
        timeout=60,
        allow_redirects=False,
    )
    assert response.status_code == 303, response.text[:300]
    assert response.headers["Location"].startswith("https://")
    streamed = requests.get(f"{served.front}/v2/images/{active}/file", headers=sent, timeout=60)
    assert streamed.status_code == 200 and streamed.content == DATA


@pytest.mark.parametrize("accept", ["*/*", "application/octet-stream", "image/png, */*;q=0.1"])
def test_a_download_that_accepts_bytes_gets_them(
    served: GlanceHttp, active: str, accept: str
) -> None:
    for base in (served.front, served.chalice):
        response = served.request(
            "GET", f"/v2/images/{active}/file", headers={"Accept": accept}, base=base
        )
        assert response.status_code == 200, response.text[:300]
        assert response.content == DATA


# -- bodies cut short on the streaming routes -----------------------------------------------


def _raw_http(base: str, request: bytes) -> tuple[int, bytes]:
    """``request`` sent as it is, the write side then closed; the status and body answered."""
    where = urllib.parse.urlsplit(base)
    with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


CUT_SHORT = {
    "shorter than its Content-Length": (b"Content-Length: 100\r\n", b"only ten b"),
    "a chunk size that is no number": (b"Transfer-Encoding: chunked\r\n", b"zz\r\ndata\r\n"),
    "a chunk without its CRLF": (b"Transfer-Encoding: chunked\r\n", b"4\r\ndataXX0\r\n\r\n"),
    "a chunked body never ended": (b"Transfer-Encoding: chunked\r\n", b"4\r\ndata\r\n"),
    "a chunk size of 40 hex digits": (b"Transfer-Encoding: chunked\r\n", b"f" * 40 + b"\r\nab"),
}


@pytest.mark.parametrize("where", ["file", "stage"])
@pytest.mark.parametrize("name", list(CUT_SHORT))
def test_a_body_cut_short_is_400_and_the_image_stays_queued(
    served: GlanceHttp, name: str, where: str
) -> None:
    framing, body = CUT_SHORT[name]
    image = served.image()
    request = (
        (
            f"PUT /v2/images/{image}/{where} HTTP/1.1\r\nHost: kiln\r\n"
            f"X-Auth-Token: {served.token()}\r\nAccept: application/json\r\n"
            "Content-Type: application/octet-stream\r\n"
        ).encode()
        + framing
        + b"\r\n"
        + body
    )
    status, answer = _raw_http(served.front, request)
    assert status == 400, answer[:300]
    error = json.loads(answer)
    assert set(error) == {"message", "code", "title"} and error["code"] == "400 Bad Request"
    assert served.request("GET", f"/v2/images/{image}").json()["status"] == "queued"


# -- other headers ----------------------------------------------------------------------------

ODD_HEADERS = {
    "X-Auth-Token garbage": ({"X-Auth-Token": "garbage"}, 401),
    "X-Auth-Token of 8 KB": ({"X-Auth-Token": "a" * 8000}, 401),
    "X-Auth-Token, three dots": ({"X-Auth-Token": "..."}, 401),
    "X-Auth-Token, bad base64": ({"X-Auth-Token": "e30.e30.%%%"}, 401),
    "Authorization Basic": ({"X-Auth-Token": "", "Authorization": "Basic dXNlcjpwYXNz"}, 401),
    "Authorization Bearer, empty": ({"X-Auth-Token": "", "Authorization": "Bearer "}, 401),
    "Content-Type garbage": ({"Content-Type": ";;;"}, 201),
    "Content-Type of 8 KB": ({"Content-Type": "application/" + "j" * 8000}, 201),
}


@pytest.mark.parametrize("name", list(ODD_HEADERS))
def test_odd_headers_on_create(served: GlanceHttp, name: str) -> None:
    headers, status = ODD_HEADERS[name]
    response = served.request("POST", "/v2/images", {"name": "x"}, headers=headers)
    if status >= 400:
        glance_error(response, status)
    else:
        assert response.status_code == status, response.text[:300]


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("", "application/json"),
        ("", "application/json-patch+json"),
        ("", "text/plain"),
        ("/file", "application/json"),
        ("/stage", "text/plain"),
    ],
)
def test_the_wrong_media_type_is_415_in_glance_s_format(
    served: GlanceHttp, path: str, kind: str
) -> None:
    image = served.image()
    method = "PATCH" if not path else "PUT"
    for base in (served.front, served.chalice):
        response = served.request(
            method, f"/v2/images/{image}{path}", b"[]", content_type=kind, base=base
        )
        glance_error(response, 415)
