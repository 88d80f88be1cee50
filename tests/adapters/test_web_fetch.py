"""web_fetch: SSRF refusals, pinned connections, manual redirects and streaming, against real
HTTP(S) servers on 127.0.0.1 and 127.0.0.2 (no other network)."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.adapters import web_fetch
from chalicelib.adapters.web_fetch import AllowList, FetchFailed, FetchRefused, open_url

BIG = bytes(range(256)) * (3 * 1024 * 1024 // 256 + 7)  # a bit over 3 MiB


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hosts_seen: list[str]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.hosts_seen.append(self.headers.get("Host", ""))  # type: ignore[attr-defined]
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        if parts.path == "/big":
            self._send(200, BIG, Content_Type="application/octet-stream")
        elif parts.path == "/redirect":
            self._send(int(query.get("status", "302")), Location=query["to"])
        elif parts.path.startswith("/loop/"):
            n = int(parts.path.rsplit("/", 1)[1])
            self._send(302, Location=f"/loop/{n + 1}")
        elif parts.path.startswith("/hops/"):
            n = int(parts.path.rsplit("/", 1)[1])
            if n:
                self._send(307, Location=f"/hops/{n - 1}")
            else:
                self._send(200, b"arrived")
        elif parts.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"abc", b"defgh", b"ij"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif parts.path == "/slow":
            time.sleep(2)
            self._send(200, b"late")
        else:
            self._send(404, b"nope")


class Server:
    def __init__(self, host: str, tls: ssl.SSLContext | None = None) -> None:
        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.hosts_seen = []  # type: ignore[attr-defined]
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.host = host
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def hosts_seen(self) -> list[str]:
        return self.httpd.hosts_seen  # type: ignore[attr-defined,no-any-return]

    def url(self, path: str, host: str | None = None, scheme: str = "http") -> str:
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def one() -> Iterator[Server]:
    server = Server("127.0.0.1")
    yield server
    server.close()


@pytest.fixture(scope="module")
def two() -> Iterator[Server]:
    server = Server("127.0.0.2")
    yield server
    server.close()


def redirect(server: Server, to: str, status: int = 302) -> str:
    return server.url("/redirect?" + urllib.parse.urlencode({"to": to, "status": status}))


LOOPBACK_ONE = AllowList(("127.0.0.1/32",))
BOTH = AllowList.parse("127.0.0.1/32, 127.0.0.2")


def fake_dns(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> list[str]:
    """Resolve the given names to the given addresses; count their lookups; others pass through."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in names:
            lookups.append(host)
            result = []
            for text in names[host]:
                ip = ipaddress.ip_address(text)
                if ip.version == 4:
                    result.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (text, port)))
                else:
                    result.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (text, port, 0, 0)))
            return result
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


@pytest.fixture
def no_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("web_fetch tried to connect")

    monkeypatch.setattr(web_fetch, "_request", refuse)


# -- refusals ---------------------------------------------------------------------------------


def test_loopback_is_refused_by_default(one: Server) -> None:
    with pytest.raises(FetchRefused, match="loopback"), open_url(one.url("/big")):
        pass


def test_refused_url_is_never_requested(one: Server) -> None:
    before = len(one.hosts_seen)
    with pytest.raises(FetchRefused), open_url(one.url("/big")):
        pass
    assert len(one.hosts_seen) == before


def test_localhost_name_resolving_to_loopback_is_refused(one: Server) -> None:
    with (
        pytest.raises(FetchRefused, match="'localhost' resolves to"),
        open_url(one.url("/big", host="localhost")),
    ):
        pass


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/image.qcow2",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://[2002:a9fe:a9fe::1]/",  # 6to4 wrapping 169.254.169.254
        "https://[64:ff9b::a00:1]/",  # NAT64 wrapping 10.0.0.1
        "http://2130706433/",  # 127.0.0.1 as a decimal integer
    ],
)
def test_internal_addresses_are_refused_without_connecting(url: str, no_connect: None) -> None:
    with pytest.raises(FetchRefused, match="not in the allow-list"), open_url(url):
        pass


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/image.qcow2",
        "gopher://example.com/",
        "http:///no-host",
        "http://user:secret@example.com/",
        "http://example.com:99999/",
        "example.com/image.qcow2",
    ],
)
def test_bad_urls_are_refused(url: str, no_connect: None) -> None:
    with pytest.raises(FetchRefused), open_url(url):
        pass


def test_any_internal_address_of_a_name_refuses_it(
    monkeypatch: pytest.MonkeyPatch, no_connect: None
) -> None:
    fake_dns(monkeypatch, {"mixed.test": ["93.184.216.34", "10.0.0.7"]})
    with pytest.raises(FetchRefused, match="10.0.0.7"), open_url("http://mixed.test/x"):
        pass


def test_public_addresses_pass_the_check() -> None:
    public = ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
    for text in [*public, "2002:808:808::1"]:
        assert web_fetch._internal_reason(ipaddress.ip_address(text)) is None, text


def test_dns_failure_is_a_fetch_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(FetchFailed, match="cannot resolve"), open_url("http://nowhere.test/"):
        pass


# -- allowed fetches --------------------------------------------------------------------------


def test_allowed_loopback_streams_the_whole_body_in_chunks(one: Server) -> None:
    chunk_size = 256 * 1024
    with open_url(one.url("/big"), LOOPBACK_ONE, chunk_size=chunk_size) as download:
        assert download.final_url == one.url("/big")
        assert download.size == len(BIG)
        assert download.content_type == "application/octet-stream"
        chunks = list(download.chunks())
    assert len(chunks) > 1
    assert max(len(c) for c in chunks) <= chunk_size
    assert b"".join(chunks) == BIG


def test_response_is_closed_when_the_context_exits(one: Server) -> None:
    with open_url(one.url("/big"), LOOPBACK_ONE, chunk_size=1024) as download:
        first = next(download.chunks())
        assert len(first) == 1024
    assert download._response.closed


def test_chunked_body_without_length(one: Server) -> None:
    with open_url(one.url("/chunked"), LOOPBACK_ONE) as download:
        assert download.size is None
        assert b"".join(download.chunks()) == b"abcdefghij"


def test_connection_is_pinned_to_the_checked_address_with_the_original_host(
    monkeypatch: pytest.MonkeyPatch, one: Server
) -> None:
    lookups = fake_dns(monkeypatch, {"images.test": ["127.0.0.1"]})
    url = one.url("/hops/0", host="images.test")
    with open_url(url, LOOPBACK_ONE) as download:
        assert b"".join(download.chunks()) == b"arrived"
    assert lookups == ["images.test"]  # one lookup; the connection used its answer
    assert one.hosts_seen[-1] == f"images.test:{one.port}"


def test_unreachable_first_address_falls_back_to_the_next(
    monkeypatch: pytest.MonkeyPatch, one: Server
) -> None:
    # Nothing listens on 127.0.0.3 at this port: connection refused, then 127.0.0.1 answers.
    fake_dns(monkeypatch, {"twice.test": ["127.0.0.3", "127.0.0.1"]})
    allow = AllowList.parse("127.0.0.0/24")
    with open_url(one.url("/hops/0", host="twice.test"), allow) as download:
        assert b"".join(download.chunks()) == b"arrived"


# -- redirects --------------------------------------------------------------------------------


def test_redirect_to_a_refused_address_is_refused(one: Server, two: Server) -> None:
    before = len(one.hosts_seen)
    url = redirect(two, one.url("/big"))
    with pytest.raises(FetchRefused, match="redirect to"), open_url(url, AllowList(("127.0.0.2",))):
        pass
    assert len(one.hosts_seen) == before


def test_redirect_to_a_file_url_is_refused(two: Server) -> None:
    url = redirect(two, "file:///etc/passwd")
    with pytest.raises(FetchRefused, match="redirect to"), open_url(url, BOTH):
        pass


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_chain_within_the_allow_list(one: Server, two: Server, status: int) -> None:
    final = one.url("/big")
    url = redirect(two, redirect(one, final, status), status)
    with open_url(url, BOTH) as download:
        assert download.final_url == final
        assert b"".join(download.chunks()) == BIG


def test_relative_redirects_up_to_the_limit(one: Server) -> None:
    with open_url(one.url("/hops/3"), LOOPBACK_ONE, max_redirects=3) as download:
        assert download.final_url == one.url("/hops/0")
        assert b"".join(download.chunks()) == b"arrived"


def test_too_many_redirects_fail(one: Server) -> None:
    with (
        pytest.raises(FetchFailed, match="more than 3 redirects"),
        open_url(one.url("/loop/0"), LOOPBACK_ONE, max_redirects=3),
    ):
        pass
    with (
        pytest.raises(FetchFailed, match="redirects"),
        open_url(one.url("/hops/4"), LOOPBACK_ONE, max_redirects=3),
    ):
        pass


# -- failures ---------------------------------------------------------------------------------


def test_404_fails_with_the_status(one: Server) -> None:
    with pytest.raises(FetchFailed, match="404"), open_url(one.url("/missing"), LOOPBACK_ONE):
        pass


def test_connection_refused_fails(one: Server) -> None:
    allow = AllowList.parse("127.0.0.0/8")
    with (
        pytest.raises(FetchFailed, match="cannot connect"),
        open_url(f"http://127.0.0.3:{one.port}/", allow),
    ):
        pass


def test_read_timeout_fails(one: Server) -> None:
    started = time.monotonic()
    with pytest.raises(FetchFailed), open_url(one.url("/slow"), LOOPBACK_ONE, timeout=0.3):
        pass
    assert time.monotonic() - started < 1.5


# -- https ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "images.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("images.test")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server = Server("127.0.0.1", tls=context)
    yield server, cert_path
    server.close()


def test_https_verifies_the_original_hostname_against_the_pinned_address(
    monkeypatch: pytest.MonkeyPatch, tls_server: tuple[Server, Path]
) -> None:
    server, ca = tls_server
    monkeypatch.setattr(web_fetch, "_CA_CERTS", str(ca))
    fake_dns(monkeypatch, {"images.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    url = server.url("/hops/0", host="images.test", scheme="https")
    with open_url(url, LOOPBACK_ONE) as download:
        assert b"".join(download.chunks()) == b"arrived"
    assert server.hosts_seen[-1] == f"images.test:{server.port}"
    # Same address, a name the certificate does not cover: verification must fail.
    wrong = server.url("/hops/0", host="other.test", scheme="https")
    with pytest.raises(FetchFailed, match="other.test"), open_url(wrong, LOOPBACK_ONE):
        pass


def test_https_rejects_an_untrusted_certificate(
    tls_server: tuple[Server, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ca = tls_server
    fake_dns(monkeypatch, {"images.test": ["127.0.0.1"]})
    url = server.url("/hops/0", host="images.test", scheme="https")
    with pytest.raises(FetchFailed), open_url(url, LOOPBACK_ONE):
        pass


# -- allow-list -------------------------------------------------------------------------------


def test_allow_list_parse() -> None:
    parsed = AllowList.parse(" 10.0.0.0/8,127.0.0.2/32  ::1/128,\n192.168.1.5 ")
    assert parsed.entries == ("10.0.0.0/8", "127.0.0.2/32", "::1/128", "192.168.1.5")
    assert AllowList.parse("").entries == ()
    assert parsed.allows(ipaddress.ip_address("10.9.8.7"))
    assert parsed.allows(ipaddress.ip_address("::ffff:10.9.8.7"))
    assert not parsed.allows(ipaddress.ip_address("127.0.0.1"))


@pytest.mark.parametrize(
    "text", ["garbage", "10.0.0.0/33", "10.0.0.0/8,nope", "300.1.2.3", "example.com", "::1/129"]
)
def test_allow_list_parse_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        AllowList.parse(text)
