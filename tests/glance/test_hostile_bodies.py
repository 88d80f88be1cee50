"""The Glance face under hostile bodies no generator is likely to find: malformed bodies and
bodies of the wrong shape on every JSON endpoint, wrong types field by field, direct-upload
parts, sizes past Glance's quotas and DynamoDB's item, writers racing a delete. Each gets a 4xx
in Glance's format, never a 5xx. Tests named "It was a 500" in their docstring pin a fix."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import boto3
import pytest
import requests

from chalicelib.adapters.artifacts import ArtifactStore
from chalicelib.adapters.glance_models import GlanceImageModel, GlanceMemberModel
from chalicelib.auth import Principal
from chalicelib.domain.glance import direct
from chalicelib.domain.glance import images as images_domain
from chalicelib.domain.glance import members as members_domain
from chalicelib.errors import BadRequest
from tests.conftest import BUCKET, REGION
from tests.glance.http_support import (
    PATCH_20,
    PATCH_21,
    UNKNOWN,
    GlanceHttp,
    glance_error,
)

# -- hostile bodies ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {image} is filled in with the endpoint's own image
    content_type: str = "application/json"
    #: JSON bodies that are valid here (so not refused as malformed)
    accepts: tuple[Any, ...] = ()


ENDPOINTS = {
    "create": Endpoint("POST", "/v2/images", accepts=({},)),
    "patch 2.1": Endpoint("PATCH", "/v2/images/{image}", PATCH_21, accepts=([],)),
    "patch 2.0": Endpoint("PATCH", "/v2/images/{image}", PATCH_20, accepts=([],)),
    "add member": Endpoint("POST", "/v2/images/{image}/members"),
    "update member": Endpoint("PUT", "/v2/images/{image}/members/beta"),
    "import": Endpoint("POST", "/v2/images/{image}/import"),
    "start direct upload": Endpoint("POST", "/v2/images/{image}/direct-upload", accepts=(None, {})),
    "complete direct upload": Endpoint("POST", "/v2/images/{image}/direct-upload/complete"),
}

MEGABYTE = "x" * 2**20
#: bodies no endpoint may take: each is 400
MALFORMED: dict[str, bytes] = {
    "arrays nested 10,000 deep": b"[" * 10000,
    "arrays nested 10,000 deep and closed": b"[" * 10000 + b"]" * 10000,
    "objects nested 10,000 deep": b'{"a":' * 10000 + b"1" + b"}" * 10000,
    "nested 33 deep": b"[" * 33 + b"]" * 33,
    "a lone surrogate": b'{"name": "\\ud800"}',
    "a lone low surrogate in a key": b'{"\\udc00": "x"}',
    "a surrogate encoded as UTF-8": '{"name": "\ud800"}'.encode("utf-8", "surrogatepass"),
    "a 1 MB name": json.dumps({"name": MEGABYTE}).encode(),
    "a 1 MB custom property": json.dumps({"kiln_note": MEGABYTE}).encode(),
    "a 1 MB member id": json.dumps({"member": MEGABYTE}).encode(),
    "a 1 MB key": json.dumps({MEGABYTE: "x"}).encode(),
    "a 1 MB patch value": json.dumps([{"op": "add", "path": "/x", "value": MEGABYTE}]).encode(),
    "a 1 MB uri": json.dumps({"method": {"name": "web-download", "uri": MEGABYTE}}).encode(),
    "a 1 MB etag": json.dumps({"parts": [{"part_number": 1, "etag": MEGABYTE}]}).encode(),
    "not UTF-8": b'{"name": "\xff\xfe"}',
    "Latin-1": '{"name": "café"}'.encode("latin-1"),
    "UTF-16": '{"name": "x"}'.encode("utf-16"),
    "binary": bytes(range(256)),
    "truncated": b'{"name": ',
    "an integer of 5,000 digits": b"9" * 5000,
    "not JSON": b"name=x",
    "whitespace": b"   ",
}
#: JSON of a shape no endpoint takes (unless it is in the endpoint's ``accepts``): each is 400
WRONG_SHAPES: dict[str, Any] = {
    "null": None,
    "an empty object": {},
    "an empty list": [],
    "a string": "name",
    "a number": 1,
    "a boolean": True,
    "a list of numbers": [1, 2],
    "a list of lists": [[{"op": "add"}]],
}


@pytest.fixture(scope="module")
def targets(served: GlanceHttp) -> dict[str, str]:
    """The image each endpoint works on, in the state its checks of the body need."""
    queued = served.image()
    member_of = served.image()
    added = served.request("POST", f"/v2/images/{member_of}/members", {"member": "beta"})
    assert added.status_code == 200, added.text
    uploading = served.image()
    started = served.request("POST", f"/v2/images/{uploading}/direct-upload", {"parts": 2})
    assert started.status_code == 201, started.text
    return {
        "create": "",
        "patch 2.1": queued,
        "patch 2.0": queued,
        "add member": member_of,
        "update member": member_of,
        "import": served.image(),
        "start direct upload": served.image(),
        "complete direct upload": uploading,
    }


def _send(served: GlanceHttp, targets: dict[str, str], name: str, body: Any) -> requests.Response:
    endpoint = ENDPOINTS[name]
    path = endpoint.path.replace("{image}", targets[name])
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return served.request(endpoint.method, path, data, content_type=endpoint.content_type)


@pytest.mark.parametrize("body", list(MALFORMED))
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_a_malformed_body_is_400(
    served: GlanceHttp, targets: dict[str, str], endpoint: str, body: str
) -> None:
    glance_error(_send(served, targets, endpoint, MALFORMED[body]), 400)


WRONG_SHAPE_CASES = [
    (endpoint, shape)
    for endpoint in ENDPOINTS
    for shape in WRONG_SHAPES
    if WRONG_SHAPES[shape] not in ENDPOINTS[endpoint].accepts
]


@pytest.mark.parametrize(("endpoint", "shape"), WRONG_SHAPE_CASES)
def test_a_body_of_the_wrong_shape_is_400(
    served: GlanceHttp, targets: dict[str, str], endpoint: str, shape: str
) -> None:
    glance_error(_send(served, targets, endpoint, WRONG_SHAPES[shape]), 400)


def test_an_empty_body_is_400_where_one_is_needed(
    served: GlanceHttp, targets: dict[str, str]
) -> None:
    for name in ENDPOINTS:
        if name == "start direct upload":  # optional there: one part
            continue
        glance_error(_send(served, targets, name, b""), 400)


N = 2**31  # one more than min_disk and min_ram may be
#: (endpoint, body, status): wrong JSON types and values, field by field
FIELDS: list[tuple[str, Any, int]] = [
    ("create", {"name": 1}, 400),
    ("create", {"name": ["x"]}, 400),
    ("create", {"name": "n" * 256}, 400),
    ("create", {"name": "n" * 65536}, 400),
    ("create", {"visibility": 1}, 400),
    ("create", {"visibility": "PUBLIC"}, 400),
    ("create", {"visibility": None}, 400),
    ("create", {"protected": "true"}, 400),
    ("create", {"protected": 1}, 400),
    ("create", {"os_hidden": None}, 400),
    ("create", {"disk_format": 1}, 400),
    ("create", {"disk_format": "RAW"}, 400),
    ("create", {"container_format": []}, 400),
    ("create", {"min_disk": "1"}, 400),
    ("create", {"min_disk": 1.5}, 400),
    ("create", {"min_disk": True}, 400),
    ("create", {"min_disk": -1}, 400),
    ("create", {"min_disk": N}, 400),
    ("create", {"min_disk": 10**130}, 400),
    ("create", {"min_ram": 12345678901234567890123456789012345678901}, 400),
    ("create", {"min_ram": 1e308}, 400),
    ("create", {"tags": "a"}, 400),
    ("create", {"tags": [1]}, 400),
    ("create", {"tags": [""]}, 400),
    ("create", {"tags": [" "]}, 400),
    ("create", {"tags": ["t" * 256]}, 400),
    ("create", {"tags": [["t"]]}, 400),
    ("create", {"tags": {"t": "t"}}, 400),
    ("create", {"id": 1}, 400),
    ("create", {"id": ""}, 400),
    ("create", {"id": "not-a-uuid"}, 400),
    ("create", {"id": UNKNOWN + "\n"}, 400),
    ("create", {"id": UNKNOWN + "\r\nX-Injected: yes"}, 400),
    ("create", {"id": "x" * 3000}, 400),
    ("create", {"kiln_note": 1}, 400),
    ("create", {"kiln_note": None}, 400),
    ("create", {"kiln_note": ["x"]}, 400),
    ("create", {"kiln_note": {"a": "b"}}, 400),
    ("create", {"kiln_note": "v" * 65536}, 400),
    ("create", {"p" * 256: "x"}, 400),
    ("create", {"status": 1}, 403),
    ("create", {"os_glance_importing_to_stores": "s3"}, 403),
    ("create", {"owner": 1}, 403),
    ("create", {"owner": "o" * 3000}, 403),
    ("patch 2.1", [1], 400),
    ("patch 2.1", ["add"], 400),
    ("patch 2.1", [{"op": 1, "path": "/name", "value": "x"}], 400),
    ("patch 2.1", [{"op": ["add"], "path": "/name", "value": "x"}], 400),
    ("patch 2.1", [{"op": "add"}], 400),
    ("patch 2.1", [{"path": "/name", "value": "x"}], 400),
    ("patch 2.1", [{"op": "add", "path": 1, "value": "x"}], 400),
    ("patch 2.1", [{"op": "add", "path": "/name"}], 400),
    ("patch 2.1", [{"op": "add", "path": "", "value": "x"}], 400),
    ("patch 2.1", [{"op": "add", "path": "/", "value": "x"}], 400),
    ("patch 2.1", [{"op": "add", "path": "name", "value": "x"}], 400),
    ("patch 2.1", [{"op": "add", "path": "/x/y", "value": "x"}], 400),
    ("patch 2.1", [{"op": "add", "path": "/~2", "value": "x"}], 400),
    ("patch 2.1", [{"op": "move", "from": "/name", "path": "/x"}], 400),
    ("patch 2.1", [{"op": "test", "path": "/name", "value": None}], 400),
    ("patch 2.1", [{"op": "replace", "path": "/name", "value": 1}], 400),
    ("patch 2.1", [{"op": "replace", "path": "/visibility", "value": None}], 400),
    ("patch 2.1", [{"op": "replace", "path": "/protected", "value": "yes"}], 400),
    ("patch 2.1", [{"op": "replace", "path": "/min_disk", "value": 10**130}], 400),
    ("patch 2.1", [{"op": "replace", "path": "/min_ram", "value": N}], 400),
    ("patch 2.1", [{"op": "add", "path": "/tags", "value": "t"}], 400),
    ("patch 2.1", [{"op": "add", "path": "/tags", "value": [1]}], 400),
    ("patch 2.1", [{"op": "add", "path": "/kiln_note", "value": 1}], 400),
    ("patch 2.1", [{"op": "add", "path": "/kiln_note", "value": "v" * 65536}], 400),
    ("patch 2.1", [{"op": "add", "path": "/" + "p" * 256, "value": "x"}], 400),
    ("patch 2.1", [{"op": "add", "path": "/owner", "value": 1}], 403),
    ("patch 2.1", [{"op": "add", "path": "/status", "value": "active"}], 403),
    ("patch 2.1", [{"op": "remove", "path": "/name"}], 403),
    ("patch 2.1", [{"op": "remove", "path": "/no_such_property"}], 409),
    ("patch 2.0", [{"replace": "/name"}], 400),
    ("patch 2.0", [{"add": "/a", "remove": "/b"}], 400),
    ("patch 2.0", [{"replace": 1, "value": "x"}], 400),
    ("patch 2.0", [{"replace": ["/name"], "value": "x"}], 400),
    ("patch 2.0", [{"op": "replace", "path": "/name", "value": "x"}], 400),
    ("patch 2.0", [{"replace": "/min_disk", "value": 10**130}], 400),
    ("add member", {"member": 1}, 400),
    ("add member", {"member": ""}, 400),
    ("add member", {"member": "   "}, 400),
    ("add member", {"member": None}, 400),
    ("add member", {"member": ["beta"]}, 400),
    ("add member", {"member": {"id": "beta"}}, 400),
    ("add member", {"member": "m" * 256}, 400),
    ("add member", {"member": "m" * 65536}, 400),
    ("add member", {"members": "beta"}, 400),
    ("update member", {"status": 1}, 400),
    ("update member", {"status": "ACCEPTED"}, 400),
    ("update member", {"status": None}, 400),
    ("update member", {"status": ["accepted"]}, 400),
    ("update member", {"state": "accepted"}, 400),
    ("import", {"method": "web-download"}, 400),
    ("import", {"method": {"name": 1}}, 400),
    ("import", {"method": {"name": ["web-download"]}}, 400),
    ("import", {"method": {"name": "copy-image"}}, 400),
    ("import", {"method": {"name": "web-download"}}, 400),
    ("import", {"method": {"name": "web-download", "uri": 1}}, 400),
    ("import", {"method": {"name": "web-download", "uri": ""}}, 400),
    ("import", {"method": {"name": "web-download", "uri": "file:///etc/passwd"}}, 400),
    ("import", {"method": {"name": "web-download", "uri": "http://169.254.169.254/"}}, 400),
    ("import", {"method": {"name": "web-download", "uri": "http://u:p@203.0.113.9/"}}, 400),
    ("import", {"method": {"name": "web-download", "uri": "http://[::1"}}, 400),
    ("import", {"method": {"name": "web-download", "uri": "http://203.0.113.9:99999/"}}, 400),
    ("import", {"method": {"name": "web-download", "uri": "http://[::ffff:127.0.0.1]/"}}, 400),
    ("import", {"method": {"name": "web-download", "uri": f"http://{'a' * 64}.example/"}}, 400),
    ("import", {"method": {"name": "glance-direct"}}, 409),
    ("start direct upload", {"parts": 0}, 400),
    ("start direct upload", {"parts": -1}, 400),
    ("start direct upload", {"parts": 1001}, 400),
    ("start direct upload", {"parts": 10000}, 400),
    ("start direct upload", {"parts": 10**30}, 400),
    ("start direct upload", {"parts": "2"}, 400),
    ("start direct upload", {"parts": 1.5}, 400),
    ("start direct upload", {"parts": True}, 400),
    ("start direct upload", {"parts": None}, 400),
    ("start direct upload", {"parts": [1]}, 400),
    ("complete direct upload", {"parts": "x"}, 400),
    ("complete direct upload", {"parts": [1]}, 400),
    ("complete direct upload", {"parts": [{}]}, 400),
    ("complete direct upload", {"parts": [{"part_number": "1", "etag": "e"}]}, 400),
    ("complete direct upload", {"parts": [{"part_number": 1, "etag": 1}]}, 400),
    ("complete direct upload", {"parts": [{"part_number": 1, "etag": ""}]}, 400),
    ("complete direct upload", {"parts": [{"part_number": True, "etag": "e"}]}, 400),
    ("complete direct upload", {"parts": [{"part_number": 0, "etag": "e"}]}, 400),
    ("complete direct upload", {"parts": [{"part_number": 10001, "etag": "e"}]}, 400),
    ("complete direct upload", {"parts": [{"part_number": 10**30, "etag": "e"}]}, 400),
    ("complete direct upload", {"parts": [{"part_number": 1, "etag": "\u0001"}]}, 400),
    ("complete direct upload", {"parts": [{"part_number": 1, "etag": "\uffff"}]}, 400),
    ("complete direct upload", {"parts": [{"part_number": 1, "etag": "e\n"}]}, 400),
    ("complete direct upload", {"parts": [{"part_number": 1, "etag": "<&>"}]}, 400),
    ("complete direct upload", {"parts": [{"part_number": 2, "etag": "e"}] * 10001}, 400),
]


@pytest.mark.parametrize(
    ("endpoint", "body", "status"),
    FIELDS,
    ids=[f"{name}: {json.dumps(body)[:60]}" for name, body, _ in FIELDS],
)
def test_a_wrong_field_is_refused(
    served: GlanceHttp, targets: dict[str, str], endpoint: str, body: Any, status: int
) -> None:
    glance_error(_send(served, targets, endpoint, body), status)


@pytest.mark.parametrize("owner", [1, {"a": "b"}, ["beta"], "", "o" * 256, "o" * 3000])
def test_an_admin_naming_an_owner_that_is_no_project_is_400(served: GlanceHttp, owner: Any) -> None:
    """It was a 500: a number, object or list failed to save; a long one passed the owner
    index's key limit."""
    response = served.request("POST", "/v2/images", {"owner": owner}, role="admin")
    glance_error(response, 400)


def test_min_disk_and_min_ram_past_glance_s_integer_are_400(served: GlanceHttp) -> None:
    """It was a 500: moto (as DynamoDB) refuses numbers past 1E+126, DynamoDB those of more
    than 38 digits; Glance's own limit is 2**31 - 1."""
    for value in (10**130, 12345678901234567890123456789012345678901, N):
        glance_error(served.request("POST", "/v2/images", {"min_disk": value}), 400)
        image = served.image()
        patch = [{"op": "replace", "path": "/min_ram", "value": value}]
        glance_error(
            served.request("PATCH", f"/v2/images/{image}", patch, content_type=PATCH_21), 400
        )
    largest = served.request("POST", "/v2/images", {"min_disk": N - 1, "min_ram": N - 1})
    assert largest.status_code == 201, largest.text
    assert largest.json()["min_disk"] == N - 1


def test_an_id_with_a_trailing_newline_is_400(served: GlanceHttp) -> None:
    """It was a 500, after the record with the newline in its id was saved: the id went into
    the Location header."""
    for suffix in ("\n", "\r\nX-Injected: yes"):
        response = served.request("POST", "/v2/images", {"id": UNKNOWN + suffix})
        glance_error(response, 400)
    listed = served.request("GET", "/v2/images", params={"limit": 1000}).json()["images"]
    assert all("\n" not in image["id"] for image in listed)
    glance_error(served.request("GET", f"/v2/images/{UNKNOWN}%0A"), 404)
    glance_error(served.request("GET", "/v2/images", params={"marker": UNKNOWN + "\n"}), 400)


def test_completing_a_direct_upload_with_odd_parts_is_400(served: GlanceHttp) -> None:
    """It was a 500: a boolean part number and an ETag with a control character reached S3."""
    image = served.image()
    started = served.request("POST", f"/v2/images/{image}/direct-upload", {"parts": 1})
    assert started.status_code == 201, started.text
    for part in ({"part_number": True, "etag": "e"}, {"part_number": 1, "etag": "\u0001\uffff"}):
        response = served.request(
            "POST", f"/v2/images/{image}/direct-upload/complete", {"parts": [part]}
        )
        glance_error(response, 400)
    shown = served.request("GET", f"/v2/images/{image}").json()
    assert shown["status"] == "saving"  # the upload is still open, to complete properly


#: what a Lambda function may answer synchronously (API Gateway answers 502 past it)
LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024


def test_the_part_urls_of_a_direct_upload_fit_in_a_lambda_response(served: GlanceHttp) -> None:
    """It was a 502 on AWS: {"parts": 10000} presigned 10,000 URLs, each carrying the Lambda
    role's session token (about a kilobyte), past the 6 MB a Lambda function may answer. The
    store here signs as a Lambda role does: with a session token."""
    s3 = boto3.client(
        "s3",
        region_name=REGION,
        aws_access_key_id="ASIAKILNTESTKEY",
        aws_secret_access_key="secret",
        aws_session_token="T" * 1100,
    )
    store = ArtifactStore(s3, BUCKET, 3600)
    alpha = Principal(subject="fuzz", tenant="alpha", role="user")
    image = served.image()
    answered = []
    for parts in (10000, 5000, 1000):
        try:
            grant = direct.start(image, {"parts": parts}, alpha, store)
        except BadRequest:
            continue
        answered.append(parts)
        size = len(json.dumps(grant).encode())
        assert size < LAMBDA_RESPONSE_BYTES, (parts, size)
        direct.abort(image, alpha, store)
    assert answered, "no number of parts was accepted"


# -- another writer between the read and the write --------------------------------------------


def _change_meanwhile(image_id: str) -> None:
    """What a concurrent PATCH and a member's answer do: new versions of the records."""
    image = GlanceImageModel.get(image_id, consistent_read=True)
    image.name = "changed meanwhile"
    image.save()
    for member in GlanceMemberModel.query(image_id):
        member.status = "accepted"
        member.save()


def test_an_image_changed_while_it_is_deleted_is_409_then_deleted(
    served: GlanceHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was a 500: the delete's version check failed, and nothing caught it."""
    image = served.image()
    added = served.request("POST", f"/v2/images/{image}/members", {"member": "beta"})
    assert added.status_code == 200, added.text
    read = images_domain.owned

    def read_then_changed(image_id: str, principal: Any, action: str = "modify") -> Any:
        found = read(image_id, principal, action)
        _change_meanwhile(image_id)
        return found

    with monkeypatch.context() as patch:
        patch.setattr(images_domain, "owned", read_then_changed)
        glance_error(served.request("DELETE", f"/v2/images/{image}"), 409)
    assert served.request("GET", f"/v2/images/{image}").json()["name"] == "changed meanwhile"
    assert served.request("DELETE", f"/v2/images/{image}").status_code == 204
    assert list(GlanceMemberModel.query(image)) == []


def test_a_member_that_answers_while_it_is_removed_is_removed(
    served: GlanceHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was a 500: the member's delete carried a version check its answer had failed."""
    image = served.image()
    added = served.request("POST", f"/v2/images/{image}/members", {"member": "beta"})
    assert added.status_code == 200, added.text
    read = members_domain.membership

    def read_then_answered(image_id: str, tenant: str) -> Any:
        found = read(image_id, tenant)
        _change_meanwhile(image_id)
        return found

    with monkeypatch.context() as patch:
        patch.setattr(members_domain, "membership", read_then_answered)
        removed = served.request("DELETE", f"/v2/images/{image}/members/beta")
    assert removed.status_code == 204, removed.text
    glance_error(served.request("GET", f"/v2/images/{image}/members/beta"), 404)


# -- sizes ------------------------------------------------------------------------------------

BIG = "v" * 60000  # seven of these pass DynamoDB's 400 KB item


def _patch(served: GlanceHttp, image: str, ops: list[dict[str, Any]]) -> requests.Response:
    return served.request("PATCH", f"/v2/images/{image}", ops, content_type=PATCH_21)


def test_129_properties_are_413(served: GlanceHttp) -> None:
    properties = {f"kiln_p{i}": "x" for i in range(129)}
    glance_error(served.request("POST", "/v2/images", properties), 413)
    image = served.image()
    ops = [{"op": "add", "path": f"/{k}", "value": v} for k, v in properties.items()]
    glance_error(_patch(served, image, ops), 413)


def test_a_record_over_dynamodb_s_400_kb_is_413(served: GlanceHttp) -> None:
    properties = {f"kiln_p{i}": BIG for i in range(7)}
    glance_error(served.request("POST", "/v2/images", properties), 413)
    image = served.image()
    for i in range(6):
        assert _patch(served, image, [{"op": "add", "path": f"/p{i}", "value": BIG}]).ok
    glance_error(_patch(served, image, [{"op": "add", "path": "/p6", "value": BIG}]), 413)
    assert len(served.request("GET", f"/v2/images/{image}").json()["p5"]) == len(BIG)


def test_129_tags_are_413(served: GlanceHttp) -> None:
    tags = [f"t{i}" for i in range(129)]
    glance_error(served.request("POST", "/v2/images", {"tags": tags}), 413)
    image = served.image(tags=tags[:128])
    glance_error(served.request("PUT", f"/v2/images/{image}/tags/one-more"), 413)
    glance_error(_patch(served, image, [{"op": "replace", "path": "/tags", "value": tags}]), 413)
