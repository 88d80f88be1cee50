"""Interoperable image import over HTTP: /v2/info/import, glance-direct (PUT /stage, then
POST /import) and web-download from a local web server, finished by the import worker."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from chalicelib.config import GLANCE_IMPORTS_QUEUE
from tests.glance.conftest import Glance
from tests.glance.test_data import download, hashes, stored_keys

DATA = b"kiln image bytes " * 700
HASHED = ("size", "checksum", "os_hash_algo", "os_hash_value")
ALLOWED = "127.0.0.2/32"


class _Serve(http.server.BaseHTTPRequestHandler):
    #: run (in the server's thread) before /hooked.raw is served
    hook: Callable[[], None] = staticmethod(lambda: None)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        port = self.server.server_address[1]
        if self.path == "/hooked.raw":
            _Serve.hook()
            self.path = "/image.raw"
        if self.path == "/image.raw":
            self.send_response(200)
            self.send_header("Content-Length", str(len(DATA)))
            self.end_headers()
            self.wfile.write(DATA)
        elif self.path == "/elsewhere":  # to a loopback address the allow-list does not cover
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{port}/image.raw")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/hop":  # to an allowed address
            self.send_response(301)
            self.send_header("Location", "/image.raw")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass


@pytest.fixture
def web() -> Iterator[str]:
    """The same files on 127.0.0.2 and 127.0.0.1 (same port), so a redirect that were followed
    to 127.0.0.1 would succeed: only the SSRF guard makes it fail."""
    servers = [http.server.ThreadingHTTPServer(("127.0.0.2", 0), _Serve)]
    port = servers[0].server_address[1]
    with contextlib.suppress(OSError):  # taken on 127.0.0.1: the redirect must still fail
        servers.append(http.server.ThreadingHTTPServer(("127.0.0.1", port), _Serve))
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        for s in servers
    ]
    for thread in threads:
        thread.start()
    yield f"http://127.0.0.2:{port}"
    for server in servers:
        server.shutdown()
        server.server_close()


def import_(glance: Glance, image_id: str, method: dict[str, Any], tenant: str = "alpha") -> Any:
    return glance.call("POST", f"/v2/images/{image_id}/import", {"method": method}, tenant)


def stage(glance: Glance, image_id: str, data: bytes, tenant: str = "alpha") -> Any:
    return glance.call(
        "PUT",
        f"/v2/images/{image_id}/stage",
        data,
        tenant,
        content_type="application/octet-stream",
    )


def image_of(glance: Glance, image_id: str) -> dict[str, Any]:
    response = glance.show(image_id)
    assert response.status_code == 200, response.body
    return dict(response.json_body)


def web_download(glance: Glance, url: str) -> tuple[str, Any]:
    image_id = str(glance.create()["id"])
    return image_id, import_(glance, image_id, {"name": "web-download", "uri": url})


def test_import_info(glance: Glance) -> None:
    response = glance.call("GET", "/v2/info/import")
    assert response.status_code == 200
    methods = response.json_body["import-methods"]
    assert methods["type"] == "array"
    assert set(methods["value"]) == {"glance-direct", "web-download"}


def test_glance_direct(glance: Glance) -> None:
    image_id = str(glance.create()["id"])
    staged = stage(glance, image_id, DATA)
    assert staged.status_code == 204, staged.body
    assert image_of(glance, image_id)["status"] == "uploading"
    assert download(glance, image_id).status_code == 204  # staged data is not downloadable
    started = import_(glance, image_id, {"name": "glance-direct"})
    assert started.status_code == 202, started.body
    image = image_of(glance, image_id)
    assert image["status"] == "importing"
    assert image["os_glance_importing_to_stores"]
    assert glance.run_imports() == 1
    image = image_of(glance, image_id)
    assert image["status"] == "active"
    assert {k: image[k] for k in HASHED} == hashes(DATA)
    assert image["os_glance_importing_to_stores"] == ""
    assert image["os_glance_failed_import"] == ""
    assert download(glance, image_id).body == DATA
    assert stored_keys(image_id) == [f"glance/{image_id}/data"]  # the staging copy is gone


def test_glance_direct_needs_staged_data(glance: Glance) -> None:
    image_id = str(glance.create()["id"])
    response = import_(glance, image_id, {"name": "glance-direct"})
    assert response.status_code == 409, response.body
    assert image_of(glance, image_id)["status"] == "queued"


def test_stage_rules(glance: Glance) -> None:
    image_id = str(glance.create()["id"])
    assert stage(glance, image_id, DATA).status_code == 204
    assert stage(glance, image_id, DATA).status_code == 409  # already uploading
    assert glance.upload(image_id, DATA).status_code == 409
    assert stage(glance, image_id, DATA, tenant="gamma").status_code == 404
    glance.kiln.configure(glance_image_size_cap=10)
    capped = str(glance.create()["id"])
    assert stage(glance, capped, b"z" * 11).status_code == 413
    assert image_of(glance, capped)["status"] == "queued"
    assert stored_keys(capped) == []


def test_import_request_checks(glance: Glance) -> None:
    image_id = str(glance.create()["id"])
    for method in ({"name": "copy-image"}, {"name": "glance-download"}, {}, "web-download"):
        response = import_(glance, image_id, method)  # type: ignore[arg-type]
        assert response.status_code == 400, (method, response.body)
    no_body = glance.call("POST", f"/v2/images/{image_id}/import", {})
    assert no_body.status_code == 400
    missing_uri = import_(glance, image_id, {"name": "web-download"})
    assert missing_uri.status_code == 400
    assert image_of(glance, image_id)["status"] == "queued"
    unknown = "00000000-0000-4000-8000-000000000000"
    assert import_(glance, unknown, {"name": "glance-direct"}).status_code == 404


def test_import_needs_formats(glance: Glance, web: str) -> None:
    glance.kiln.configure(glance_import_allow=ALLOWED)
    image_id = str(glance.create(disk_format=None, container_format=None)["id"])
    response = import_(glance, image_id, {"name": "web-download", "uri": f"{web}/image.raw"})
    assert response.status_code == 409, response.body
    assert image_of(glance, image_id)["status"] == "queued"


def test_only_the_owner_imports(glance: Glance, web: str) -> None:
    glance.kiln.configure(glance_import_allow=ALLOWED)
    image_id = str(glance.create()["id"])
    method = {"name": "web-download", "uri": f"{web}/image.raw"}
    assert import_(glance, image_id, method, tenant="gamma").status_code == 404
    glance.call("POST", f"/v2/images/{image_id}/members", {"member": "beta"})
    assert import_(glance, image_id, method, tenant="beta").status_code == 403
    assert image_of(glance, image_id)["status"] == "queued"
    assert glance.run_imports() == 0


def test_web_download_refuses_internal_addresses(glance: Glance, web: str) -> None:
    image_id, response = web_download(glance, f"{web}/image.raw")
    assert response.status_code == 400, response.body
    assert "does not pass filtering" in response.json_body["message"]
    assert image_of(glance, image_id)["status"] == "queued"
    for url in ("file:///etc/passwd", "ftp://127.0.0.2/x", "http://user:pw@example.com/x"):
        assert web_download(glance, url)[1].status_code == 400, url


def test_web_download(glance: Glance, web: str) -> None:
    glance.kiln.configure(glance_import_allow=ALLOWED)
    image_id, response = web_download(glance, f"{web}/image.raw")
    assert response.status_code == 202, response.body
    assert image_of(glance, image_id)["status"] == "importing"
    # a second import while one is under way is a conflict
    again = import_(glance, image_id, {"name": "web-download", "uri": f"{web}/image.raw"})
    assert again.status_code == 409
    assert glance.run_imports() == 1
    image = image_of(glance, image_id)
    assert image["status"] == "active"
    assert {k: image[k] for k in HASHED} == hashes(DATA)
    assert download(glance, image_id).body == DATA
    # an active image is no import target
    late = import_(glance, image_id, {"name": "web-download", "uri": f"{web}/image.raw"})
    assert late.status_code == 409


def test_web_download_follows_an_allowed_redirect(glance: Glance, web: str) -> None:
    glance.kiln.configure(glance_import_allow=ALLOWED)
    image_id, response = web_download(glance, f"{web}/hop")
    assert response.status_code == 202
    glance.run_imports()
    assert image_of(glance, image_id)["checksum"] == hashes(DATA)["checksum"]


def failed(glance: Glance, image_id: str) -> dict[str, Any]:
    image = image_of(glance, image_id)
    assert image["status"] == "queued"
    assert image["os_glance_failed_import"]
    assert image["os_glance_importing_to_stores"] == ""
    assert image["kiln_import_error"]
    assert image["size"] is None and image["checksum"] is None
    assert download(glance, image_id).status_code == 204
    assert stored_keys(image_id) == []
    return image


def test_web_download_of_a_missing_file(glance: Glance, web: str) -> None:
    glance.kiln.configure(glance_import_allow=ALLOWED)
    image_id, response = web_download(glance, f"{web}/missing.raw")
    assert response.status_code == 202
    assert glance.run_imports() == 1
    assert "404" in failed(glance, image_id)["kiln_import_error"]
    # the image can be imported again; success clears the failure
    retry = import_(glance, image_id, {"name": "web-download", "uri": f"{web}/image.raw"})
    assert retry.status_code == 202, retry.body
    glance.run_imports()
    image = image_of(glance, image_id)
    assert image["status"] == "active"
    assert image["os_glance_failed_import"] == ""
    assert "kiln_import_error" not in image


def test_web_download_redirect_to_a_refused_address(glance: Glance, web: str) -> None:
    glance.kiln.configure(glance_import_allow=ALLOWED)
    image_id, response = web_download(glance, f"{web}/elsewhere")
    assert response.status_code == 202
    glance.run_imports()
    assert "127.0.0.1" in failed(glance, image_id)["kiln_import_error"]


def test_web_download_over_the_size_cap(glance: Glance, web: str) -> None:
    glance.kiln.configure(glance_import_allow=ALLOWED, glance_image_size_cap=100)
    image_id, response = web_download(glance, f"{web}/image.raw")
    assert response.status_code == 202
    glance.run_imports()
    failed(glance, image_id)


def test_a_replayed_import_message_does_nothing(glance: Glance, web: str) -> None:
    glance.kiln.configure(glance_import_allow=ALLOWED)
    image_id, response = web_download(glance, f"{web}/image.raw")
    assert response.status_code == 202
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = glance.kiln.provisioned.queue_urls[GLANCE_IMPORTS_QUEUE]
    peeked = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]
    assert len(peeked) == 1
    assert glance.run_imports() == 1
    done = image_of(glance, image_id)
    assert done["status"] == "active"
    sqs.send_message(QueueUrl=url, MessageBody=peeked[0]["Body"])
    assert glance.run_imports() == 1
    assert image_of(glance, image_id) == done
    # even after a new import began (here: the image deleted and its id reused, queued again)
    assert glance.call("DELETE", f"/v2/images/{image_id}").status_code == 204
    glance.create(id=image_id)
    sqs.send_message(QueueUrl=url, MessageBody=peeked[0]["Body"])
    assert glance.run_imports() == 1
    assert image_of(glance, image_id)["status"] == "queued"
    assert stored_keys(image_id) == []


def test_deleting_the_image_during_a_web_download(glance: Glance, web: str) -> None:
    glance.kiln.configure(glance_import_allow=ALLOWED)
    image_id, response = web_download(glance, f"{web}/hooked.raw")
    assert response.status_code == 202
    deleted: list[int] = []
    _Serve.hook = staticmethod(  # type: ignore[method-assign]
        lambda: deleted.append(glance.call("DELETE", f"/v2/images/{image_id}").status_code)
    )
    try:
        assert glance.run_imports() == 1
    finally:
        _Serve.hook = staticmethod(lambda: None)  # type: ignore[method-assign]
    assert deleted == [204]
    assert glance.show(image_id).status_code == 404
    assert stored_keys(image_id) == []  # what was fetched is not left behind
    assert glance.run_imports() == 0  # and the message was handled, not left to retry
