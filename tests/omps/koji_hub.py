"""Koji and Greenwave as the OMPS tests meet them: real servers on loopback, each in a thread.

- ``KojiHubServer``: a Koji hub over XML-RPC (stdlib ``xmlrpc.server``), answering ``getBuild``,
  ``getAPIVersion`` and ``getBuildLogs`` for the builds a test registers; a method can be made
  to fault.
- ``FileServer``: the Koji root URL (``http.server``), serving the files a test puts at paths;
  anything else is 404. ``requests`` lists every path asked for.
- Both can be made slow (``delay``), for the timeouts.
- ``GreenwaveServer``: ``POST /api/v1.0/decision`` answers what the test set (status and body,
  or a body that is not JSON), recording each request; ``GET /api/v1.0/about`` its version.

    with KojiHubServer() as hub, FileServer() as files:
        hub.add_build("op-1.0-1")  # typeinfo(ARCHIVE)
        files.put("packages/op/1.0/1/files/operator-manifests/operator_manifests.zip", data)
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import socketserver
import sys
import threading
import time
import xmlrpc.client
import xmlrpc.server
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

#: the archive name OSBS gives the operator-manifests archive
ARCHIVE = "operator_manifests.zip"
#: the Koji hub's API version the test hub reports
API_VERSION = 1


def typeinfo(archive: str) -> dict[str, Any]:
    """A build's ``extra`` naming its archive the current way (the operator-manifests type)."""
    return {"typeinfo": {"operator-manifests": {"archive": archive}}}


def legacy(archive: str) -> dict[str, Any]:
    """A build's ``extra`` naming its archive the legacy way (among the build's logs)."""
    return {"operator_manifests_archive": archive}


def split_nvr(nvr: str) -> tuple[str, str, str]:
    """Koji's name, version, release of an N-V-R (the name may hold dashes)."""
    name, version, release = nvr.rsplit("-", 2)
    return name, version, release


class Server:
    """A server on a free loopback port, served from a daemon thread while in ``with``."""

    server: socketserver.TCPServer

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        # a short poll: shutdown() waits for the loop to look, 0.5 s by default, per server
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


class _QuietMixIn:
    """A client that gave up (a timeout under test) is no error of the server's."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[misc]


class _XMLRPCServer(_QuietMixIn, socketserver.ThreadingMixIn, xmlrpc.server.SimpleXMLRPCServer):
    daemon_threads = True


class _QuietXMLRPCHandler(xmlrpc.server.SimpleXMLRPCRequestHandler):
    rpc_paths = ()  # any path: the hub URL's path is the deployment's choice (/kojihub)

    def log_message(self, *args: object) -> None:
        pass


class KojiHubServer(Server):
    """A Koji hub: builds by N-V-R; ``faults[method] = text`` makes a method fault."""

    def __init__(self) -> None:
        self.builds: dict[str, dict[str, Any]] = {}
        self.logs: dict[int, list[dict[str, str]]] = {}
        self.faults: dict[str, str] = {}
        self.delay = 0.0  # seconds before each answer: a slow hub
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.server = _XMLRPCServer(
            ("127.0.0.1", 0), requestHandler=_QuietXMLRPCHandler, allow_none=True, logRequests=False
        )
        self.server.register_instance(self)

    @property
    def hub_url(self) -> str:
        return self.url + "/kojihub"

    def add_build(
        self,
        nvr: str,
        extra: dict[str, Any] | None = None,
        *,
        logs: tuple[str, ...] = (),
        volume: str | None = None,
    ) -> dict[str, Any]:
        """Register a build with ``extra`` (default: ``typeinfo(ARCHIVE)``, an operator image)
        and the log files ``logs``, on ``volume`` (default: Koji's DEFAULT)."""
        name, version, release = split_nvr(nvr)
        build_id = len(self.builds) + 1
        build = {
            "build_id": build_id,
            "id": build_id,
            "nvr": nvr,
            "name": name,
            "version": version,
            "release": release,
            "volume_name": volume or "DEFAULT",
            "state": 1,
            "extra": typeinfo(ARCHIVE) if extra is None else extra,
        }
        self.builds[nvr] = build
        self.logs[build_id] = [
            {
                "name": log,
                "dir": "noarch",
                "path": f"{self.build_dir(build)}/data/logs/noarch/{log}",
            }
            for log in logs
        ]
        return build

    @staticmethod
    def build_dir(build: dict[str, Any]) -> str:
        volume = build["volume_name"]
        base = "" if volume == "DEFAULT" else f"vol/{volume}/"
        return f"{base}packages/{build['name']}/{build['version']}/{build['release']}"

    def _dispatch(self, method: str, params: tuple[Any, ...]) -> Any:
        self.calls.append((method, params))
        time.sleep(self.delay)
        if method in self.faults:
            raise xmlrpc.client.Fault(1000, self.faults[method])  # koji.GenericError
        if method == "getBuild":
            return self.builds.get(params[0])
        if method == "getAPIVersion":
            return API_VERSION
        if method == "getBuildLogs":
            return self.logs.get(params[0], [])
        raise xmlrpc.client.Fault(1000, f"Invalid method: {method}")


class _ThreadingHTTPServer(_QuietMixIn, http.server.ThreadingHTTPServer):
    daemon_threads = True


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: Any

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.owner.answer(self, "GET", b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.owner.answer(self, "POST", self.rfile.read(length) if length else b"")

    def send(self, status: int, body: bytes, content_type: str, length: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")  # the end of the body is the end of it
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)


def _http_server(owner: Any) -> http.server.ThreadingHTTPServer:
    handler = type("Handler", (_Handler,), {"owner": owner})
    return _ThreadingHTTPServer(("127.0.0.1", 0), handler)


class FileServer(Server):
    """The Koji root URL: ``put(path, data)`` serves ``data`` at ``/<path>``; with
    ``declare_length=False`` the size is not announced (a download must count it)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.declare_length = True
        self.delay = 0.0  # seconds before each answer: a slow file server
        self.server = _http_server(self)

    def put(self, path: str, data: bytes) -> str:
        self.files["/" + path.lstrip("/")] = data
        return self.url + "/" + path.lstrip("/")

    def answer(self, handler: _Handler, _method: str, _body: bytes) -> None:
        self.requests.append(handler.path)
        time.sleep(self.delay)
        data = self.files.get(handler.path)
        if data is None:
            handler.send(404, b"Not Found", "text/plain")
        else:
            handler.send(200, data, "application/zip", length=self.declare_length)


class GreenwaveServer(Server):
    """Greenwave: ``decide(status, body)`` sets the decision's answer (``body`` as JSON, or
    bytes as they are); ``decisions`` lists the JSON bodies asked."""

    VERSION = "2.1.0"

    def __init__(self) -> None:
        self.status = 200
        self.body: Any = {"policies_satisfied": True, "summary": "All required tests passed"}
        self.about_status = 200
        self.decisions: list[Any] = []
        self.server = _http_server(self)

    @property
    def base_url(self) -> str:
        """The URL as OMPS's configuration gives it: ending in ``/``."""
        return self.url + "/"

    def decide(self, status: int, body: Any) -> None:
        self.status, self.body = status, body

    def answer(self, handler: _Handler, method: str, body: bytes) -> None:
        if method == "POST" and handler.path == "/api/v1.0/decision":
            self.decisions.append(json.loads(body))
            raw = self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()
            handler.send(self.status, raw, "application/json")
        elif method == "GET" and handler.path == "/api/v1.0/about":
            raw = json.dumps({"version": self.VERSION}).encode()
            handler.send(self.about_status, raw, "application/json")
        else:
            handler.send(404, b'{"message": "Not Found"}', "application/json")


@dataclasses.dataclass
class KojiWorld:
    """A hub, its file server and Greenwave, as one Koji deployment the tests publish to."""

    hub: KojiHubServer
    files: FileServer
    greenwave: GreenwaveServer

    def settings(self, *, greenwave: bool = False) -> dict[str, Any]:
        """Kiln's settings for this deployment (the root URL ends in ``/``, as configurations
        often give it: the archive URL must still have one ``/`` there)."""
        found: dict[str, Any] = {
            "omps_koji_hub_url": self.hub.hub_url,
            "omps_koji_root_url": self.files.url + "/",
            "omps_request_timeout_seconds": 5,
        }
        if greenwave:
            found.update(
                omps_greenwave_url=self.greenwave.base_url,
                omps_greenwave_context="osbs_push",
                omps_greenwave_product_version="cvp",
            )
        return found

    def release(
        self,
        nvr: str,
        archive: bytes,
        *,
        name: str = ARCHIVE,
        volume: str | None = None,
    ) -> str:
        """A build whose archive is filed the current way; the archive's URL."""
        build = self.hub.add_build(nvr, typeinfo(name), volume=volume)
        path = f"{self.hub.build_dir(build)}/files/operator-manifests/{name}"
        return self.files.put(path, archive)


@contextlib.contextmanager
def koji_world() -> Iterator[KojiWorld]:
    with KojiHubServer() as hub, FileServer() as files, GreenwaveServer() as greenwave:
        yield KojiWorld(hub, files, greenwave)
