"""The OpenStack clients, unmodified, against the stack `make up` runs (no build hosts): the
python-glanceclient library and CLI, and openstacksdk with version discovery. Data goes through
the local front's streaming routes into S3 (moto server) and back."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from glanceclient import Client as GlanceClient
from glanceclient import exc as glance_exc
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
from openstack import connection
from openstack import exceptions as sdk_exc

from infra.local import tokens
from infra.local.process import StackProcess
from tests.conftest import free_port

MIB = 1024 * 1024


class Stack:
    def __init__(self, process: StackProcess) -> None:
        self.process = process
        self.url = process.info["glance_url"]
        self._private = (process.state_dir / "jwt-private.pem").read_bytes()

    def token(self, tenant: str, role: str = "user") -> str:
        return tokens.mint(self._private, tenant, role)

    def glance(self, tenant: str) -> Any:
        return GlanceClient("2", endpoint=self.url, token=self.token(tenant))

    def sdk(self, tenant: str) -> connection.Connection:
        auth = token_endpoint.Token(self.url, self.token(tenant))
        return connection.Connection(
            session=ks_session.Session(auth=auth),
            image_api_version="2",
            image_endpoint_override=self.url,
        )

    def http(self, method: str, path: str, tenant: str, **kwargs: Any) -> requests.Response:
        headers = {"X-Auth-Token": self.token(tenant), **kwargs.pop("headers", {})}
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kwargs)

    def create(self, tenant: str, name: str) -> dict:
        """A queued raw/bare image, over plain HTTP."""
        body = {"name": name, "disk_format": "raw", "container_format": "bare"}
        created = self.http("POST", "/v2/images", tenant, json=body)
        assert created.status_code == 201, created.text
        return dict(created.json())

    def wait_status(self, image_id: str, tenant: str, wanted: str, timeout: float = 60) -> dict:
        deadline = time.time() + timeout
        while True:
            image = self.http("GET", f"/v2/images/{image_id}", tenant).json()
            if image["status"] == wanted or time.time() > deadline:
                return dict(image)
            time.sleep(0.3)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("glance-stack")
    env = {"KILN_BUILD_HOSTS": "none", "KILN_GLANCE_IMPORT_ALLOW": "127.0.0.2/32"}
    with StackProcess(state, free_port(), free_port(), **env) as running:
        yield Stack(running)


def pattern(size: int) -> Iterator[bytes]:
    """``size`` bytes that are not all alike, 1 MiB at a time, never held whole."""
    block = hashlib.sha512(b"kiln").digest() * (MIB // 64)
    for start in range(0, size, MIB):
        yield bytes([(start // MIB) % 251]) + block[: min(MIB, size - start) - 1]


def digests(chunks: Iterator[bytes]) -> tuple[int, str, str]:
    md5, sha512, size = hashlib.md5(), hashlib.sha512(), 0
    for chunk in chunks:
        md5.update(chunk)
        sha512.update(chunk)
        size += len(chunk)
    return size, md5.hexdigest(), sha512.hexdigest()


class Stream(io.RawIOBase):
    """A file-like body over the pattern, so the client streams it (chunked)."""

    def __init__(self, size: int) -> None:
        self._chunks, self._rest = pattern(size), b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while len(self._rest) < max(n, 1):
            more = next(self._chunks, b"")
            if not more:
                break
            self._rest += more
        n = len(self._rest) if n < 0 else n
        out, self._rest = self._rest[:n], self._rest[n:]
        return out


def test_glanceclient_walk(stack: Stack) -> None:
    alpha, beta = stack.glance("alpha"), stack.glance("beta")
    size = 64 * MIB
    expected = digests(pattern(size))
    image = alpha.images.create(
        name="walk", disk_format="qcow2", container_format="bare", os_distro="debian"
    )
    assert image.status == "queued" and image.os_distro == "debian"
    alpha.images.upload(image.id, Stream(size), image_size=size)
    shown = alpha.images.get(image.id)
    assert (shown.status, shown.size, shown.checksum) == ("active", size, expected[1])
    assert (shown.os_hash_algo, shown.os_hash_value) == ("sha512", expected[2])

    # download: glanceclient verifies the hash itself as it reads
    assert digests(iter(alpha.images.data(image.id))) == expected
    ranged = stack.http(
        "GET", f"/v2/images/{image.id}/file", "alpha", headers={"Range": "bytes=1048570-1048585"}
    )
    assert ranged.status_code == 206
    assert ranged.content == b"".join(pattern(size))[1048570:1048586]
    assert ranged.headers["Content-Range"] == f"bytes 1048570-1048585/{size}"

    # patch and tags
    alpha.images.update(image.id, name="walked", os_version="12", remove_props=["os_distro"])
    alpha.image_tags.update(image.id, "golden")
    alpha.image_tags.update(image.id, "x86")
    alpha.image_tags.delete(image.id, "x86")
    shown = alpha.images.get(image.id)
    assert shown.name == "walked" and shown.os_version == "12" and "os_distro" not in shown
    assert shown.tags == ["golden"]

    # share with beta: invisible in its list until it accepts
    alpha.images.update(image.id, visibility="shared")
    alpha.image_members.create(image.id, "beta")
    assert image.id not in [i.id for i in beta.images.list()]
    assert beta.images.get(image.id).id == image.id  # a member may read it by id
    beta.image_members.update(image.id, "beta", "accepted")
    assert image.id in [i.id for i in beta.images.list()]
    assert digests(iter(beta.images.data(image.id)))[1] == expected[1]
    with pytest.raises(glance_exc.HTTPForbidden):
        beta.images.update(image.id, name="mine now")
    assert image.id not in [i.id for i in stack.glance("gamma").images.list()]
    with pytest.raises(glance_exc.HTTPNotFound):
        stack.glance("gamma").images.get(image.id)

    # deactivate / reactivate, protected delete, delete
    alpha.images.deactivate(image.id)
    assert alpha.images.get(image.id).status == "deactivated"
    with pytest.raises(glance_exc.HTTPForbidden):
        list(beta.images.data(image.id))
    alpha.images.reactivate(image.id)
    alpha.images.update(image.id, protected=True)
    with pytest.raises(glance_exc.HTTPForbidden):
        alpha.images.delete(image.id)
    alpha.images.update(image.id, protected=False)
    alpha.images.delete(image.id)
    with pytest.raises(glance_exc.HTTPNotFound):
        alpha.images.get(image.id)


def test_glanceclient_lists_with_filters_and_paging(stack: Stack) -> None:
    client = stack.glance("lister")
    made = []
    for n in range(7):
        made.append(
            client.images.create(
                name=f"img-{n}",
                disk_format="raw",
                container_format="bare",
                tags=["even"] if n % 2 == 0 else ["odd"],
                min_ram=n,
            ).id
        )
    # page_size 2: glanceclient follows the next links to the end
    listed = [i.id for i in client.images.list(page_size=2)]
    assert listed == list(reversed(made))
    evens = [i.name for i in client.images.list(filters={"tag": ["even"]}, page_size=2)]
    assert evens == ["img-6", "img-4", "img-2", "img-0"]
    by_name = [i.name for i in client.images.list(sort="name:asc", page_size=3)]
    assert by_name == sorted(by_name) and len(by_name) == 7
    assert [i.name for i in client.images.list(filters={"name": "img-3"})] == ["img-3"]
    with pytest.raises(glance_exc.HTTPBadRequest):
        list(client.images.list(sort="nonsense:asc"))


def test_openstacksdk_walk(stack: Stack) -> None:
    owner, other = stack.sdk("sdk-owner"), stack.sdk("sdk-other")
    data = b"".join(pattern(5 * MIB + 3))
    image = owner.image.create_image(
        name="sdk-image",
        disk_format="qcow2",
        container_format="bare",
        data=io.BytesIO(data),
        tags=["one"],
        validate_checksum=False,
    )
    image = owner.image.get_image(image.id)
    assert image.status == "active" and image.size == len(data)
    assert image.checksum == hashlib.md5(data).hexdigest()
    assert image.hash_value == hashlib.sha512(data).hexdigest()
    assert owner.image.download_image(image.id).content == data
    owner.image.update_image(image, name="sdk-renamed", min_ram=512)
    owner.image.add_tag(image, "two")
    image = owner.image.get_image(image.id)
    assert (image.name, image.min_ram, sorted(image.tags)) == ("sdk-renamed", 512, ["one", "two"])
    assert [i.id for i in owner.image.images(tag="two")] == [image.id]

    owner.image.add_member(image, member_id="sdk-other")
    assert image.id not in [i.id for i in other.image.images()]
    other.image.update_member("sdk-other", image.id, status="accepted")
    assert image.id in [i.id for i in other.image.images()]

    owner.image.deactivate_image(image)
    assert owner.image.get_image(image.id).status == "deactivated"
    owner.image.reactivate_image(image)
    owner.image.update_image(image, is_protected=True)
    with pytest.raises(sdk_exc.ForbiddenException):
        owner.image.delete_image(image, ignore_missing=False)
    owner.image.update_image(image, is_protected=False)
    owner.image.delete_image(image)
    with pytest.raises(sdk_exc.NotFoundException):
        owner.image.get_image(image.id)


def test_glance_cli(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "disk.raw"
    source.write_bytes(b"".join(pattern(3 * MIB)))
    cli = [
        str(Path(sys.executable).parent / "glance"),
        "--os-image-url",
        stack.url,
        "--os-auth-token",
        stack.token("cli"),
    ]
    created = subprocess.run(
        [
            *cli,
            "image-create",
            "--name",
            "from-cli",
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "--file",
            str(source),
            "--property",
            "a=b",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OS_AUTH_URL": ""},
    ).stdout
    assert "| active" in created and "| a " in created
    image_id = next(
        line.split("|")[2].strip() for line in created.splitlines() if line.startswith("| id ")
    )
    out = tmp_path / "out.raw"
    subprocess.run([*cli, "image-download", "--file", str(out), image_id], check=True)
    assert out.read_bytes() == source.read_bytes()


def test_an_upload_cut_short_leaves_the_image_queued(stack: Stack) -> None:
    image = stack.create("cut", "cut")
    host, port = stack.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"PUT /v2/images/{image['id']}/file HTTP/1.1\r\nHost: {host}\r\n"
            f"X-Auth-Token: {stack.token('cut')}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {20 * MIB}\r\n\r\n".encode()
        )
        sock.sendall(b"x" * (9 * MIB))  # more than one S3 part, then the client is gone
    shown = stack.wait_status(image["id"], "cut", "queued")
    assert shown["status"] == "queued" and shown["size"] is None and shown["checksum"] is None
    assert stack.http("GET", f"/v2/images/{image['id']}/file", "cut").status_code == 204
    # and the image takes a whole upload afterwards
    whole = stack.http(
        "PUT",
        f"/v2/images/{image['id']}/file",
        "cut",
        data=b"y" * 1000,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert whole.status_code == 204
    assert stack.http("GET", f"/v2/images/{image['id']}", "cut").json()["size"] == 1000


class _Files(http.server.BaseHTTPRequestHandler):
    body = b"".join(pattern(6 * MIB + 11))

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/disk")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


def test_web_download_and_direct_upload_through_the_stack(stack: Stack) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), _Files)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        base = f"http://127.0.0.2:{server.server_port}"
        image = stack.create("web", "web")
        started = stack.http(
            "POST",
            f"/v2/images/{image['id']}/import",
            "web",
            json={"method": {"name": "web-download", "uri": base + "/disk"}},
        )
        assert started.status_code == 202, started.text
        shown = stack.wait_status(image["id"], "web", "active")
        assert shown["checksum"] == hashlib.md5(_Files.body).hexdigest()
        assert shown["os_glance_failed_import"] == ""

        refused = stack.create("web", "web2")
        stack.http(
            "POST",
            f"/v2/images/{refused['id']}/import",
            "web",
            json={"method": {"name": "web-download", "uri": base + "/redirect"}},
        )
        failed = stack.wait_status(refused["id"], "web", "queued")
        assert (
            failed["os_glance_failed_import"] == "s3" and "127.0.0.1" in failed["kiln_import_error"]
        )
    finally:
        server.shutdown()

    # straight to S3 with presigned parts; the bucket's upload event activates the image
    image = stack.create("direct", "direct")
    grant = stack.http(
        "POST", f"/v2/images/{image['id']}/direct-upload", "direct", json={"parts": 2}
    ).json()
    data = b"".join(pattern(7 * MIB))
    parts = []
    for part, piece in zip(grant["parts"], (data[: 5 * MIB], data[5 * MIB :]), strict=True):
        put = requests.put(part["url"], data=piece, timeout=60)
        assert put.status_code == 200, put.text
        parts.append({"part_number": part["part_number"], "etag": put.headers["ETag"]})
    done = stack.http("POST", grant["complete"], "direct", json={"parts": parts})
    assert done.status_code == 202, done.text
    shown = stack.wait_status(image["id"], "direct", "active")
    assert (shown["size"], shown["checksum"]) == (len(data), hashlib.md5(data).hexdigest())
    assert json.loads(json.dumps(shown))["os_hash_value"] == hashlib.sha512(data).hexdigest()


def test_openstack_cli(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "disk.raw"
    source.write_bytes(b"".join(pattern(2 * MIB + 5)))
    cli = [
        str(Path(sys.executable).parent / "openstack"),
        "--os-auth-type",
        "admin_token",
        "--os-endpoint",
        f"{stack.url}/v2",
        "--os-token",
        stack.token("osc"),
    ]

    def run(*args: str) -> str:
        done = subprocess.run(
            [*cli, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    created = json.loads(
        run(
            "image",
            "create",
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "--file",
            str(source),
            "--property",
            "a=b",
            "--tag",
            "t",
            "-f",
            "json",
            "osc-image",
        )
    )
    assert created["status"] == "active" and created["size"] == source.stat().st_size
    out = tmp_path / "out.raw"
    run("image", "save", "--file", str(out), "osc-image")
    assert out.read_bytes() == source.read_bytes()
    run("image", "set", "--name", "osc-renamed", "--property", "c=d", "osc-image")
    listed = json.loads(run("image", "list", "--tag", "t", "-f", "json"))
    assert [i["Name"] for i in listed] == ["osc-renamed"]
    run("image", "delete", "osc-renamed")
    assert json.loads(run("image", "list", "-f", "json")) == []
