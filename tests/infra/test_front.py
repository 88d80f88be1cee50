"""infra/local/front.py: a tiny Chalice app (not Kiln's) served as `chalice local` serves it, plus
streaming routes. Fast: loopback only, no timing assertions."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import queue
import random
import socket
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from chalice import Chalice, Response
from chalice.config import Config
from chalice.local import ChaliceRequestHandler, create_local_server

from chalicelib.streaming import StreamRequest, StreamResponse
from infra.local.front import Front, IncompleteBody, create_front

MIB = 1 << 20
BLOB = bytes(range(256)) * 64 + b"\x00\xff\xfe not utf-8 \x80"
OCTETS = "application/octet-stream"


def make_app() -> Chalice:
    app = Chalice(app_name="front-test")

    @app.route("/items/{name}", methods=["GET"])
    def item(name: str) -> dict[str, Any]:
        return {"name": name, "query": app.current_request.to_dict()["query_params"]}

    @app.route("/echo", methods=["POST"], content_types=["application/json", OCTETS])
    def echo() -> dict[str, Any]:
        request = app.current_request
        body = request.raw_body
        return {
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "content_length": request.headers.get("content-length"),
            "transfer_encoding": request.headers.get("transfer-encoding"),
        }

    @app.route("/blob", methods=["GET"])
    def blob() -> Response:
        return Response(body=BLOB, headers={"Content-Type": OCTETS})

    @app.route("/blob", methods=["POST"], content_types=[OCTETS])
    def blob_echo() -> Response:
        return Response(body=app.current_request.raw_body, headers={"Content-Type": OCTETS})

    @app.route("/multi")
    def multi() -> Response:
        headers = {"X-One": "1", "Set-Cookie": ["a=1", "b=2"], "Content-Type": "text/plain"}
        return Response(body="made", status_code=201, headers=headers)

    @app.route("/cors", cors=True)
    def cors() -> dict[str, bool]:
        return {"cors": True}

    @app.route("/boom")
    def boom() -> None:
        raise ValueError("boom")

    return app


def random_blocks(count: int, size: int = MIB) -> Iterator[bytes]:
    for i in range(count):
        yield random.Random(i).randbytes(size)


def digest(pieces: Iterable[bytes]) -> tuple[int, str]:
    sha, total = hashlib.sha256(), 0
    for piece in pieces:
        sha.update(piece)
        total += len(piece)
    return total, sha.hexdigest()


SEEN: queue.Queue[tuple[str, Any]] = queue.Queue()


def upload(request: StreamRequest) -> StreamResponse:
    sha, total, reads, largest = hashlib.sha256(), 0, 0, 0
    try:
        while piece := request.body.read(MIB):
            sha.update(piece)
            total, reads, largest = total + len(piece), reads + 1, max(largest, len(piece))
    except IncompleteBody as e:
        SEEN.put(("incomplete", (request.params["name"], total, e)))
        return StreamResponse(400, {"Content-Type": "application/json"}, b'{"cut": true}')
    answer = {"name": request.params["name"], "length": total, "sha256": sha.hexdigest()}
    answer |= {"reads": reads, "largest": largest, "content_length": request.content_length}
    answer |= {"query": request.query, "expect": request.headers.get("expect")}
    return StreamResponse(200, {"Content-Type": "application/json"}, json.dumps(answer).encode())


def download(request: StreamRequest) -> StreamResponse:
    count = int(request.params["mib"])
    headers = {"Content-Type": OCTETS}
    if request.query.get("length") == ["1"]:
        headers["Content-Length"] = str(count * MIB)
    return StreamResponse(200, headers, random_blocks(count))


def fail(_request: StreamRequest) -> StreamResponse:
    raise RuntimeError("handler failed")


def ignore(_request: StreamRequest) -> StreamResponse:
    return StreamResponse(202, {"Content-Type": "text/plain"}, b"ignored")


ROUTES = [
    ("POST", r"/upload/(?P<name>[a-z]+)", upload),
    ("GET", r"/download/(?P<mib>\d+)", download),
    ("POST", r"/fail", fail),
    ("put", r"/ignore", ignore),
]


@contextlib.contextmanager
def running(server: Any) -> Iterator[tuple[str, int]]:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def front() -> Iterator[tuple[str, int]]:
    server = create_front(make_app(), Config.create(), "127.0.0.1", 0, streaming_routes=ROUTES)
    assert isinstance(server, Front)
    with running(server) as address:
        yield address


@pytest.fixture(scope="module")
def chalice_local() -> Iterator[tuple[str, int]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ChaliceRequestHandler, "log_message", lambda *_args: None)
        server = create_local_server(make_app(), Config.create(), "127.0.0.1", 0)
        with running(server.server) as address:
            yield address


def call(address: tuple[str, int], method: str, path: str, body: Any = None, **headers: str):
    conn = http.client.HTTPConnection(*address, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


IGNORED = {"date", "server", "connection"}


def comparable(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out = [(k.lower(), v) for k, v in headers if k.lower() not in IGNORED]
    return sorted((k, "<id>" if k == "x-amzn-requestid" else v) for k, v in out)


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    [
        ("GET", "/items/abc?x=1&x=2&y=", None, {}),
        ("GET", "/items/abc/", None, {}),
        ("GET", "/nope", None, {}),
        ("GET", "/nope", None, {"Authorization": "Bearer x"}),
        ("POST", "/items/abc", b"{}", {"Content-Type": "application/json"}),
        ("OPTIONS", "/cors", None, {"Origin": "http://x", "Access-Control-Request-Method": "GET"}),
        ("GET", "/cors", None, {}),
        ("GET", "/blob", None, {"Accept": OCTETS}),
        ("POST", "/blob", BLOB, {"Content-Type": OCTETS, "Accept": OCTETS}),
        ("GET", "/multi", None, {}),
        ("GET", "/boom", None, {}),
        ("POST", "/echo", b'{"a": 1}', {"Content-Type": "application/json"}),
        ("POST", "/echo", b"{}", {"Content-Type": "text/plain"}),
    ],
)
def test_answers_as_chalice_local(front, chalice_local, method, path, body, headers) -> None:
    expected = call(chalice_local, method, path, body, **headers)
    got = call(front, method, path, body, **headers)
    assert got[0] == expected[0]
    assert got[2] == expected[2]
    assert comparable(got[1]) == comparable(expected[1])


def test_json_route_and_unknown_route(front) -> None:
    status, headers, body = call(front, "GET", "/items/abc?x=1")
    assert (status, json.loads(body)) == (200, {"name": "abc", "query": {"x": "1"}})
    assert dict(headers)["Content-Type"] == "application/json"
    status, _, body = call(front, "GET", "/nowhere")
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})


def test_keep_alive_reuses_the_connection(front) -> None:
    conn = http.client.HTTPConnection(*front, timeout=30)
    conn.request("GET", "/items/one")
    first = conn.getresponse()
    assert json.loads(first.read())["name"] == "one"
    sock = conn.sock
    assert sock is not None
    port = sock.getsockname()[1]
    conn.request("POST", "/upload/small", body=b"hello")
    second = conn.getresponse()
    assert json.loads(second.read())["length"] == 5
    conn.request("GET", "/items/three")
    assert json.loads(conn.getresponse().read())["name"] == "three"
    assert conn.sock is sock and sock.getsockname()[1] == port
    conn.close()


def test_chunked_post_reaches_a_chalice_route_whole(front) -> None:
    pieces = [json.dumps({"n": i, "pad": "x" * i}).encode() for i in range(300)]
    payload = b"[" + b",".join(pieces) + b"]"
    parts = [payload[i : i + 7777] for i in range(0, len(payload), 7777)]
    conn = http.client.HTTPConnection(*front, timeout=30)
    conn.request("POST", "/echo", body=iter(parts), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    answer = json.loads(response.read())
    assert response.status == 200
    assert answer["length"] == len(payload)
    assert answer["sha256"] == hashlib.sha256(payload).hexdigest()
    assert answer["content_length"] == str(len(payload))
    assert answer["transfer_encoding"] is None
    conn.close()


@pytest.mark.parametrize("chunked", [True, False])
def test_streaming_route_reads_a_large_body_in_pieces(front, chunked: bool) -> None:
    count = 64
    sent_sha = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for block in random_blocks(count):
            sent_sha.update(block)
            for i in range(0, MIB, 300_000):  # pieces that do not line up with the reads
                yield block[i : i + 300_000]

    headers = {} if chunked else {"Content-Length": str(count * MIB)}
    conn = http.client.HTTPConnection(*front, timeout=60)
    conn.request("POST", "/upload/big?a=1&a=2", body=body(), headers=headers)
    response = conn.getresponse()
    answer = json.loads(response.read())
    assert response.status == 200
    assert answer["length"] == count * MIB
    assert answer["sha256"] == sent_sha.hexdigest()
    assert answer["reads"] == count and answer["largest"] == MIB
    assert answer["content_length"] == (None if chunked else count * MIB)
    assert answer["query"] == {"a": ["1", "2"]} and answer["name"] == "big"
    assert response.getheader("Connection") is None
    conn.close()


@pytest.mark.parametrize("with_length", [True, False])
def test_streaming_route_sends_a_large_body(front, with_length: bool) -> None:
    count = 32
    conn = http.client.HTTPConnection(*front, timeout=60)
    conn.request("GET", f"/download/{count}" + ("?length=1" if with_length else ""))
    response = conn.getresponse()
    assert response.status == 200
    if with_length:
        assert response.getheader("Content-Length") == str(count * MIB)
    else:
        assert response.getheader("Transfer-Encoding") == "chunked"
    received = digest(iter(lambda: response.read(MIB), b""))
    assert received == digest(random_blocks(count))
    conn.request("GET", "/items/after")  # the connection is still good
    assert json.loads(conn.getresponse().read())["name"] == "after"
    conn.close()


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_client_that_stops_early_gives_incomplete_body(front) -> None:
    while not SEEN.empty():
        SEEN.get_nowait()
    with socket.create_connection(front, timeout=30) as sock:
        sock.sendall(b"POST /upload/cut HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        sock.sendall(b"0123456789")
    kind, (name, total, error) = SEEN.get(timeout=10)
    assert (kind, name, total) == ("incomplete", "cut", 0)  # read(MIB) wants what never came
    assert isinstance(error, IncompleteBody) and isinstance(error, OSError)
    with socket.create_connection(front, timeout=30) as sock:  # chunked, cut in a chunk
        sock.sendall(b"POST /upload/chunk HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.sendall(b"a\r\n0123456789\r\n100\r\nabc")
        sock.shutdown(socket.SHUT_WR)
        answer = read_all(sock)
    kind, (name, _total, error) = SEEN.get(timeout=10)
    assert (kind, name) == ("incomplete", "chunk") and isinstance(error, IncompleteBody)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"\r\nConnection: close\r\n" in answer


@pytest.mark.parametrize("path", ["/upload/expect", "/echo"])
def test_expect_100_continue(front, path: str) -> None:
    payload = b'{"hello": "world"}'
    with socket.create_connection(front, timeout=30) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {len(payload)}\r\nExpect: 100-continue\r\n\r\n"
        sock.sendall(head.encode())
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += sock.recv(1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(payload)
        response = http.client.HTTPResponse(sock)
        response.begin()
        answer = json.loads(response.read())
    assert response.status == 200
    assert answer["length"] == len(payload)
    assert answer["sha256"] == hashlib.sha256(payload).hexdigest()


def test_binary_response_and_request_are_byte_exact(front) -> None:
    status, headers, body = call(front, "GET", "/blob", Accept=OCTETS)
    assert (status, body, dict(headers)["Content-Type"]) == (200, BLOB, OCTETS)
    data = random.Random(7).randbytes(300_000)
    binary = {"Content-Type": OCTETS, "Accept": OCTETS}
    status, _, body = call(front, "POST", "/blob", data, **binary)
    assert (status, body) == (200, data)


def test_streaming_handler_errors_and_unread_bodies(front, caplog) -> None:
    status, headers, body = call(front, "POST", "/fail", b"x")
    assert (status, json.loads(body)) == (500, {"message": "internal error"})
    assert "handler failed" in caplog.text
    conn = http.client.HTTPConnection(*front, timeout=30)
    conn.request("PUT", "/ignore", body=b"y" * 100_000)
    response = conn.getresponse()
    assert (response.status, response.read()) == (202, b"ignored")
    assert response.getheader("Connection") == "close"  # the body was not read: not reusable
    conn.close()
    status, _, _ = call(front, "GET", "/ignore")  # method must match: Chalice answers
    assert status == 403


def test_shutdown_frees_the_port() -> None:
    server = create_front(make_app(), Config.create(), "127.0.0.1", 0)
    host, port = server.server_address
    with running(server):
        assert call((host, port), "GET", "/items/x")[0] == 200
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=5)
    create_front(make_app(), Config.create(), "127.0.0.1", 0).shutdown()  # never served


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "M-SEARCH", "get", "!#$%&'*+-.^_`|~"])
def test_any_method_token_reaches_the_app(front, method: str) -> None:
    """http.server answers 501 (an HTML page) for a method it has no do_ for; the app decides:
    405 with Allow where it knows the path, LocalGateway's 403 where it does not."""
    conn = http.client.HTTPConnection(*front, timeout=30)
    try:
        for path, allowed in (("/items/abc", {"GET"}), ("/blob", {"GET", "POST"})):
            body = b"<propfind/>" if method == "PROPFIND" else None
            conn.request(method, path, body=body, headers={"Content-Type": "application/xml"})
            response = conn.getresponse()
            answer = json.loads(response.read())
            assert response.status == 405, answer
            assert {m.strip() for m in response.getheader("Allow", "").split(",")} == allowed
            assert answer["Message"] == f"Unsupported method: {method}"
        for path in ("/nowhere", "/upload/name", "/ignore"):  # streaming routes: own method only
            conn.request(method, path)
            response = conn.getresponse()
            answer = json.loads(response.read())
            assert (response.status, answer) == (403, {"message": "Missing Authentication Token"})
            assert response.getheader("x-amzn-ErrorType") == "UnauthorizedException"
        conn.request("GET", "/items/after")  # the connection is still good
        assert json.loads(conn.getresponse().read())["name"] == "after"
    finally:
        conn.close()


@pytest.mark.parametrize("method", [b"GE(T", b"G\xc9T", b"PUT/", b"[GET]", b'"GET"', b"GET\x00"])
def test_a_method_that_is_not_a_token_gets_400(front, method: bytes) -> None:
    with socket.create_connection(front, timeout=30) as sock:
        sock.sendall(method + b" /items/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        answer = json.loads(response.read())
    assert (response.status, answer) == (400, {"message": "bad request method"})
    assert response.getheader("Connection") == "close"


BURST = 240  # connections opened together, each sending its request at once


def test_a_burst_of_concurrent_connections_all_get_answers(front) -> None:
    """socketserver listens with a backlog of 5: in a burst of a few dozen connections, those
    the accept queue had no room for got resets or no answer at all."""
    barrier = threading.Barrier(BURST)
    answers: list[Any] = [None] * BURST

    def client(i: int) -> None:
        path = "/echo" if i % 2 else f"/upload/{'b' * (i % 7 + 1)}"  # chalice, streaming
        ctype = "application/json" if i % 2 else OCTETS
        payload = json.dumps({"client": i, "pad": "x" * i}).encode()
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
        head += f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        try:
            barrier.wait(timeout=30)
            with socket.create_connection(front, timeout=20) as sock:
                sock.sendall(head.encode() + payload)
                response = http.client.HTTPResponse(sock)
                response.begin()
                answer = json.loads(response.read())
            got = (response.status, answer["length"], answer["sha256"])
            expected = (200, len(payload), hashlib.sha256(payload).hexdigest())
            answers[i] = True if got == expected else (got, expected)
        except Exception as e:  # noqa: BLE001 (reported below, per client)
            answers[i] = e

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    failed = {i: answer for i, answer in enumerate(answers) if answer is not True}
    assert not failed, f"{len(failed)} of {BURST} clients got no answer: {list(failed.items())[:5]}"
