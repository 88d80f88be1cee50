"""Image data over HTTP: PUT/GET /file (whole and ranged), the size cap, and Kiln's
direct-upload extension (presigned S3 parts, activated by the bucket's upload event)."""

from __future__ import annotations

import hashlib
from typing import Any

import boto3
import requests

from tests.conftest import BUCKET
from tests.glance.conftest import Glance

DATA = bytes(range(256)) * 40 + b"tail"  # 10244 bytes


def file_of(image_id: str) -> str:
    return f"/v2/images/{image_id}/file"


def download(glance: Glance, image_id: str, tenant: str = "alpha", **headers: str) -> Any:
    sent = glance.headers(tenant, Accept="application/octet-stream", **headers)
    return glance.call("GET", file_of(image_id), headers=sent)


def header(response: Any, name: str) -> str | None:
    for key, value in response.headers.items():
        if key.lower() == name.lower():
            return str(value)
    return None


def stored_keys(image_id: str) -> list[str]:
    s3 = boto3.client("s3", region_name="us-east-1")
    found = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"glance/{image_id}/")
    return [item["Key"] for item in found.get("Contents", [])]


def hashes(data: bytes) -> dict[str, Any]:
    return {
        "size": len(data),
        "checksum": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "os_hash_algo": "sha512",
        "os_hash_value": hashlib.sha512(data).hexdigest(),
    }


def active_image(glance: Glance, data: bytes = DATA) -> str:
    image_id = str(glance.create(name="with-data")["id"])
    response = glance.upload(image_id, data)
    assert response.status_code == 204, response.body
    return image_id


# -- PUT and GET /file -------------------------------------------------------------------------
def test_upload_then_download_byte_exact(glance: Glance) -> None:
    image_id = str(glance.create()["id"])
    assert glance.show(image_id).json_body["status"] == "queued"
    response = glance.upload(image_id, DATA)
    assert response.status_code == 204, response.body
    image = glance.show(image_id).json_body
    assert image["status"] == "active"
    assert {k: image[k] for k in ("size", "checksum", "os_hash_algo", "os_hash_value")} == hashes(
        DATA
    )
    got = download(glance, image_id)
    assert got.status_code == 200, got.body
    assert got.body == DATA
    assert header(got, "Content-Type") == "application/octet-stream"
    assert header(got, "Content-MD5") == hashlib.md5(DATA, usedforsecurity=False).hexdigest()
    assert header(got, "Content-Length") == str(len(DATA))
    assert header(got, "Content-Range") is None


def test_empty_upload(glance: Glance) -> None:
    image_id = active_image(glance, b"")
    image = glance.show(image_id).json_body
    assert image["status"] == "active"
    assert image["size"] == 0
    assert image["checksum"] == hashlib.md5(b"", usedforsecurity=False).hexdigest()


def test_ranges(glance: Glance) -> None:
    image_id = active_image(glance)
    size = len(DATA)
    for value, first, last in (
        ("bytes=0-9", 0, 9),
        ("bytes=100-199", 100, 199),
        (f"bytes=10000-{size + 50}", 10000, size - 1),  # the end is clipped to the data
        ("bytes=10200-", 10200, size - 1),
        ("bytes=-16", size - 16, size - 1),
        (f"bytes=-{size * 2}", 0, size - 1),  # a suffix longer than the data: all of it
    ):
        got = download(glance, image_id, Range=value)
        assert got.status_code == 206, (value, got.body)
        assert got.body == DATA[first : last + 1], value
        assert header(got, "Content-Range") == f"bytes {first}-{last}/{size}", value
        assert header(got, "Content-Length") == str(last - first + 1), value
        assert header(got, "Content-MD5") is None, value


def test_unsatisfiable_ranges(glance: Glance) -> None:
    image_id = active_image(glance)
    size = len(DATA)
    for value in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=9-3", "chars=0-1"):
        got = download(glance, image_id, Range=value)
        assert got.status_code == 416, (value, got.status_code)


def test_upload_to_an_active_image_is_a_conflict(glance: Glance) -> None:
    image_id = active_image(glance)
    response = glance.upload(image_id, b"other bytes")
    assert response.status_code == 409, response.body
    assert download(glance, image_id).body == DATA
    assert glance.show(image_id).json_body["checksum"] == hashes(DATA)["checksum"]


def test_upload_needs_disk_and_container_format(glance: Glance) -> None:
    image_id = str(glance.create(disk_format=None, container_format=None)["id"])
    response = glance.upload(image_id, DATA)
    assert response.status_code == 400, response.body
    image = glance.show(image_id).json_body
    assert image["status"] == "queued"
    assert image["size"] is None
    assert download(glance, image_id).status_code == 204


def test_a_queued_image_has_no_content(glance: Glance) -> None:
    image_id = str(glance.create()["id"])
    got = download(glance, image_id)
    assert got.status_code == 204
    assert not got.body


def test_other_tenants_cannot_upload(glance: Glance) -> None:
    image_id = str(glance.create(visibility="shared")["id"])
    # a stranger does not learn the image exists
    assert glance.upload(image_id, DATA, tenant="gamma").status_code == 404
    # a member sees it, but may not write its data
    glance.call("POST", f"/v2/images/{image_id}/members", {"member": "beta"})
    assert glance.upload(image_id, DATA, tenant="beta").status_code == 403
    assert glance.show(image_id).json_body["status"] == "queued"
    assert stored_keys(image_id) == []


def test_members_and_strangers_downloading(glance: Glance) -> None:
    image_id = active_image(glance)
    assert download(glance, image_id, tenant="beta").status_code == 404
    glance.call("POST", f"/v2/images/{image_id}/members", {"member": "beta"})
    got = download(glance, image_id, tenant="beta")
    assert got.status_code == 200
    assert got.body == DATA


def test_size_cap(glance: Glance) -> None:
    glance.kiln.configure(glance_image_size_cap=10)
    image_id = str(glance.create()["id"])
    response = glance.upload(image_id, b"x" * 11)
    assert response.status_code == 413, response.body
    image = glance.show(image_id).json_body
    assert image["status"] == "queued"
    assert image["size"] is None and image["checksum"] is None
    assert download(glance, image_id).status_code == 204
    assert stored_keys(image_id) == []
    # data within the cap still goes in
    assert glance.upload(image_id, b"y" * 10).status_code == 204
    assert glance.show(image_id).json_body["size"] == 10


def test_deleting_an_image_removes_its_data(glance: Glance) -> None:
    image_id = active_image(glance)
    assert stored_keys(image_id) == [f"glance/{image_id}/data"]
    assert glance.call("DELETE", f"/v2/images/{image_id}").status_code == 204
    assert stored_keys(image_id) == []
    assert download(glance, image_id).status_code == 404


def test_download_of_a_deactivated_image(glance: Glance) -> None:
    image_id = active_image(glance)
    deactivated = glance.call("POST", f"/v2/images/{image_id}/actions/deactivate")
    assert deactivated.status_code == 204, deactivated.body
    assert download(glance, image_id).status_code == 403
    admin = glance.call(
        "GET",
        file_of(image_id),
        headers=glance.headers("ops", "admin", Accept="application/octet-stream"),
    )
    assert admin.status_code == 200
    assert admin.body == DATA


# -- direct upload: presigned parts straight to S3 ------------------------------------------
MIB = 1024 * 1024


def start_direct(glance: Glance, image_id: str, parts: int = 2) -> Any:
    return glance.call("POST", f"/v2/images/{image_id}/direct-upload", {"parts": parts})


def put_parts(grant: dict[str, Any], pieces: list[bytes]) -> list[dict[str, Any]]:
    sent = []
    for part, piece in zip(grant["parts"], pieces, strict=True):
        response = requests.put(part["url"], data=piece, timeout=30)
        assert response.status_code == 200, response.text
        sent.append({"part_number": part["part_number"], "etag": response.headers["ETag"]})
    return sent


def test_direct_upload(glance: Glance) -> None:
    image_id = str(glance.create()["id"])
    started = start_direct(glance, image_id)
    assert started.status_code == 201, started.body
    grant = started.json_body
    assert [p["part_number"] for p in grant["parts"]] == [1, 2]
    assert all(p["url"].startswith("http") for p in grant["parts"])
    assert grant["complete"] == f"/v2/images/{image_id}/direct-upload/complete"
    assert glance.show(image_id).json_body["status"] == "saving"
    pieces = [b"a" * (5 * MIB), b"the last part"]
    sent = put_parts(grant, pieces)
    done = glance.call("POST", grant["complete"], {"parts": sent})
    assert done.status_code == 202, done.body
    assert glance.run_upload_events() >= 1
    image = glance.show(image_id).json_body
    data = b"".join(pieces)
    assert image["status"] == "active"
    assert {k: image[k] for k in ("size", "checksum", "os_hash_algo", "os_hash_value")} == hashes(
        data
    )
    got = download(glance, image_id, Range="bytes=-13")
    assert got.status_code == 206
    assert got.body == b"the last part"
    # a repeated event changes nothing
    glance.run_upload_events()
    assert glance.show(image_id).json_body == image


def test_direct_upload_with_wrong_etags(glance: Glance) -> None:
    image_id = str(glance.create()["id"])
    grant = start_direct(glance, image_id).json_body
    sent = put_parts(grant, [b"a" * (5 * MIB), b"b"])
    wrong = [{**part, "etag": '"' + "0" * 32 + '"'} for part in sent]
    done = glance.call("POST", grant["complete"], {"parts": wrong})
    assert done.status_code == 400, done.body
    glance.run_upload_events()
    assert glance.show(image_id).json_body["status"] == "saving"
    aborted = glance.call("DELETE", f"/v2/images/{image_id}/direct-upload")
    assert aborted.status_code == 204, aborted.body
    image = glance.show(image_id).json_body
    assert image["status"] == "queued"
    assert image["size"] is None
    # nothing is open any more; the image takes data again
    assert glance.call("POST", grant["complete"], {"parts": sent}).status_code == 409
    assert glance.upload(image_id, b"fine").status_code == 204


def test_direct_upload_needs_a_queued_image(glance: Glance) -> None:
    image_id = active_image(glance)
    assert start_direct(glance, image_id).status_code == 409
    queued = str(glance.create()["id"])
    assert start_direct(glance, queued).status_code == 201
    assert start_direct(glance, queued).status_code == 409  # already saving
    assert glance.upload(queued, DATA).status_code == 409


def test_direct_upload_checks(glance: Glance) -> None:
    image_id = str(glance.create()["id"])
    for parts in (0, -1, "2", True, 10001):
        response = start_direct(glance, image_id, parts)  # type: ignore[arg-type]
        assert response.status_code == 400, (parts, response.body)
    no_format = str(glance.create(disk_format=None, container_format=None)["id"])
    assert start_direct(glance, no_format).status_code == 400
    assert (
        glance.call(
            "POST", f"/v2/images/{image_id}/direct-upload", {"parts": 1}, tenant="gamma"
        ).status_code
        == 404
    )
    assert glance.call("DELETE", f"/v2/images/{image_id}/direct-upload").status_code == 409
    assert glance.show(image_id).json_body["status"] == "queued"


def test_direct_upload_over_the_size_cap(glance: Glance) -> None:
    glance.kiln.configure(glance_image_size_cap=10)
    image_id = str(glance.create()["id"])
    grant = start_direct(glance, image_id, 1).json_body
    sent = put_parts(grant, [b"q" * 11])
    assert glance.call("POST", grant["complete"], {"parts": sent}).status_code == 202
    glance.run_upload_events()
    image = glance.show(image_id).json_body
    assert image["status"] == "queued"
    assert image["size"] is None
    assert stored_keys(image_id) == []
    assert download(glance, image_id).status_code == 204


def test_aborting_a_completed_direct_upload(glance: Glance) -> None:
    image_id = str(glance.create()["id"])
    grant = start_direct(glance, image_id, 1).json_body
    sent = put_parts(grant, [b"first try"])
    assert glance.call("POST", grant["complete"], {"parts": sent}).status_code == 202
    # the owner gives up before the upload event is handled: nothing of it stays
    assert glance.call("DELETE", f"/v2/images/{image_id}/direct-upload").status_code == 204
    assert stored_keys(image_id) == []
    # a second direct upload is under way when the first one's event arrives late
    second = start_direct(glance, image_id, 1).json_body
    glance.run_upload_events()
    assert glance.show(image_id).json_body["status"] == "saving"
    sent = put_parts(second, [b"second try"])
    assert glance.call("POST", second["complete"], {"parts": sent}).status_code == 202
    glance.run_upload_events()
    image = glance.show(image_id).json_body
    assert image["status"] == "active"
    assert image["checksum"] == hashes(b"second try")["checksum"]
    assert download(glance, image_id).body == b"second try"


def test_data_must_be_an_octet_stream(glance: Glance) -> None:
    image_id = str(glance.create()["id"])
    for path in (file_of(image_id), f"/v2/images/{image_id}/stage"):
        response = glance.call("PUT", path, DATA, content_type="application/json")
        assert response.status_code == 415, (path, response.body)
    assert glance.show(image_id).json_body["status"] == "queued"
