"""Kiln's local HTTP front: the Chalice app served as `chalice local` serves it, without its fixed
per-request delay (its headers and body go out in separate sends: Nagle meets delayed ACK on
keep-alive connections), with chunked request bodies, and streaming routes for data
(chalicelib/streaming.py). Other requests go through `chalice.local.LocalGateway`, so the app
sees the same events, authorizers, CORS and 403/404/405 answers as under `chalice local`; with
any method that is a token (TRACE, PROPFIND, ...), where `chalice local` answers 501.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO, cast
from urllib.parse import parse_qs, urlsplit

from chalice import Chalice
from chalice.config import Config
from chalice.local import LocalChalice, LocalGateway, LocalGatewayException

from chalicelib import streaming
from chalicelib.streaming import IncompleteBody, StreamRequest, StreamResponse

__all__ = ["Front", "IncompleteBody", "StreamRequest", "StreamResponse", "create_front"]

log = logging.getLogger(__name__)

Headers = list[tuple[str, str]]
_FRAMING = ("content-length", "transfer-encoding", "connection")  # set by the front only
_JSON = ("Content-Type", "application/json")
_CRLF = (b"\r\n", b"\n")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a method is a token (RFC 9110 5.6.2)


class _Body:
    """A request body read as asked, by Content-Length or de-chunked: read(n) gives n bytes
    unless the body ends first (like a file), IncompleteBody if it is cut short."""

    def __init__(self, handler: _RequestHandler, length: int | None) -> None:
        self._handler, self._rfile, self.length = handler, handler.rfile, length
        self._left = length or 0  # Content-Length: bytes left; chunked: left in this chunk
        self.consumed = length == 0

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(1 << 20), b""))
        if self.consumed or size == 0:
            return b""
        self._handler.send_continue()
        if self.length is not None:
            data = self._take(min(size, self._left))
            self._left -= len(data)
            self.consumed = self._left == 0
            return data
        parts: list[bytes] = []
        while size > 0 and not self.consumed:
            if self._left == 0:
                self._next_chunk()
                continue
            parts.append(self._take(min(size, self._left)))
            size, self._left = size - len(parts[-1]), self._left - len(parts[-1])
            if self._left == 0 and self._take(0, line=True) not in _CRLF:
                raise IncompleteBody("malformed chunked body: no CRLF after a chunk")
        return b"".join(parts)

    def _next_chunk(self) -> None:
        line = self._take(0, line=True)
        try:
            self._left = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise IncompleteBody(f"malformed chunk size line {line[:40]!r}") from None
        if self._left < 0:
            raise IncompleteBody("negative chunk size")
        if self._left == 0:  # the last chunk, then trailers up to an empty line
            while self._take(0, line=True) not in _CRLF:
                pass
            self.consumed = True

    def _take(self, n: int, line: bool = False) -> bytes:
        try:
            data = self._rfile.readline(65537) if line else self._rfile.read(n)
        except OSError as e:
            raise IncompleteBody(f"request body cut short: {e}") from e
        if not data.endswith(b"\n") if line else len(data) < n:
            raise IncompleteBody("request body ended before its end")
        return data


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY on the accepted socket
    wbufsize = -1  # buffered wfile: one flush sends status line, headers and body together

    def setup(self) -> None:
        super().setup()
        self._front = cast(Front, self.server)
        self._gateway = LocalGateway(self._front.app, self._front.config)  # as chalice local
        self._front.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._front.track(self.connection, add=False)

    def parse_request(self) -> bool:
        self._expect_continue = False
        if not super().parse_request():
            return False
        if not _TOKEN.fullmatch(self.command):
            self._error(400, "bad request method")
            return False
        return True

    def __getattr__(self, name: str) -> Any:
        """do_<METHOD> for every method parse_request lets through: all go to _dispatch, so
        the streaming routes or the app answer (405 and Allow for a path the app knows, as API
        Gateway) where http.server would send its 501 page for a method it has no do_ for."""
        if name.startswith("do_") and name[3:] == self.__dict__.get("command"):
            return self._dispatch
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def handle_expect_100(self) -> bool:
        self._expect_continue = True  # answered when the body is first read
        return True

    def send_continue(self) -> None:
        if self._expect_continue:
            self._expect_continue = False
            try:
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.wfile.flush()
            except OSError as e:
                raise IncompleteBody(f"client gone: {e}") from e

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _dispatch(self) -> None:
        start, url = time.perf_counter(), urlsplit(self.path)
        for method, pattern, handler in self._front.routes:
            match = pattern.fullmatch(url.path) if method == self.command else None
            if match is not None:
                status = self._stream(handler, match, url.path, url.query)
                break
        else:
            status = self._chalice()
        ms = (time.perf_counter() - start) * 1000
        log.debug("%s %s -> %s (%.1f ms)", self.command, self.path, status, ms)

    def _body(self) -> _Body | None:
        """The request body's reader, or None after answering a body it cannot frame."""
        encoding = self.headers.get("Transfer-Encoding")
        if encoding is not None:
            if encoding.split(",")[-1].strip().lower() == "chunked":
                return _Body(self, None)
            self._error(501, "unsupported transfer-encoding")
            return None
        length = self.headers.get("Content-Length", "0").strip()
        if not length.isdecimal():
            self._error(400, "bad content-length")
            return None
        return _Body(self, int(length))

    def _chalice(self) -> int:
        reader = self._body()
        if reader is None:
            return 400
        try:
            body = reader.read() or None  # None when there is no body, as chalice local
        except IncompleteBody as e:
            log.debug("%s %s: %s", self.command, self.path, e)
            return self._error(400, "incomplete request body")
        headers: dict[str, Any] = dict(self.headers)  # first value of each name, as chalice local
        if reader.length is None:  # de-chunked: the app sees a Content-Length, as behind API GW
            headers = {k: v for k, v in headers.items() if k.lower() != "transfer-encoding"}
            headers["Content-Length"] = str(len(body or b""))
        try:
            response = self._gateway.handle_request(self.command, self.path, headers, body)
        except LocalGatewayException as e:
            return self._send_chalice(e.CODE, dict(e.headers), e.body)
        except Exception:
            log.exception("%s %s failed", self.command, self.path)
            return self._error(500, "internal error", close=False)
        out = {**response["headers"], **(response.get("multiValueHeaders") or {})}
        payload = response.get("body")
        if response.get("isBase64Encoded"):
            payload = base64.b64decode(cast(str, payload))
        return self._send_chalice(response["statusCode"], out, payload)

    def _send_chalice(self, status: int, headers: dict[str, Any], body: str | bytes | None) -> int:
        """Headers as ChaliceRequestHandler sends them: Content-Type's default, list values."""
        pairs: Headers = []
        if body is not None:
            body = body.encode("utf-8") if isinstance(body, str) else body
            pairs.append(("Content-Type", str(headers.pop("Content-Type", "application/json"))))
        for name, value in headers.items():
            pairs += [(name, str(one)) for one in (value if isinstance(value, list) else [value])]
        return self._send(status, pairs, body or b"")

    def _stream(
        self, handler: streaming.Handler, match: re.Match[str], path: str, query: str
    ) -> int:
        reader = self._body()
        if reader is None:
            return 400
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        params = {k: v for k, v in match.groupdict().items() if v is not None}
        query_params = parse_qs(query, keep_blank_values=True)
        body = cast(BinaryIO, reader)
        request = StreamRequest(
            self.command, path, query_params, headers, params, body, reader.length
        )
        try:
            response = handler(request)
        except Exception:
            log.exception("streaming handler for %s %s failed", self.command, path)
            response = StreamResponse(500, dict([_JSON]), b'{"message": "internal error"}')
        if not reader.consumed:  # the rest of the body would be read as the next request
            self.close_connection = True
        pairs = [(k, str(v)) for k, v in response.headers.items() if k.lower() not in _FRAMING]
        if isinstance(response.body, bytes | bytearray | memoryview):
            return self._send(response.status, pairs, bytes(response.body))
        lower = {k.lower(): str(v) for k, v in response.headers.items()}
        self._send_iterable(response.status, pairs, response.body, lower.get("content-length"))
        return response.status

    def _send_iterable(
        self, status: int, pairs: Headers, body: Iterable[bytes], length: str | None
    ) -> None:
        chunked = length is None and self.request_version == "HTTP/1.1"
        if length is not None:
            pairs.append(("Content-Length", length))
        elif chunked:
            pairs.append(("Transfer-Encoding", "chunked"))
        else:  # an HTTP/1.0 client: the body ends with the connection
            self.close_connection = True
        sent, write = 0, self.wfile.write
        try:
            write(self._head(status, pairs))
            self.wfile.flush()
            for piece in body if self.command != "HEAD" else ():
                if piece:
                    sent += len(piece)
                    write(b"%x\r\n" % len(piece) if chunked else b"")
                    write(piece)
                    write(b"\r\n" if chunked else b"")
                    self.wfile.flush()
            if chunked and self.command != "HEAD":
                write(b"0\r\n\r\n")
                self.wfile.flush()
        except OSError as e:
            log.debug("%s %s: client gone while streaming: %s", self.command, self.path, e)
            self.close_connection = True
        except Exception:  # the response is cut short: the client sees an incomplete body
            log.exception("streaming response body for %s %s failed", self.command, self.path)
            self.close_connection = True
        finally:
            close = getattr(body, "close", None)
            if callable(close):
                close()
        if length is not None and self.command != "HEAD" and str(sent) != length:
            log.debug("%s %s: sent %d of %s bytes", self.command, self.path, sent, length)
            self.close_connection = True

    def _head(self, status: int, headers: Headers) -> bytes:
        lines = [f"{self.protocol_version} {status} {self.responses.get(status, ('',))[0]}"]
        lines += [f"Server: {self.version_string()}", f"Date: {self.date_time_string()}"]
        lines += [f"{name}: {value}" for name, value in headers]
        lines += ["Connection: close"] if self.close_connection else []
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _error(self, status: int, message: str, close: bool = True) -> int:
        self.close_connection = self.close_connection or close
        return self._send(status, [_JSON], b'{"message": "%s"}' % message.encode())

    def _send(self, status: int, headers: Headers, body: bytes) -> int:
        """Status line, headers and body in one write (no body on the wire for HEAD)."""
        headers = [(k, v) for k, v in headers if k.lower() not in _FRAMING]
        head = self._head(status, [*headers, ("Content-Length", str(len(body)))])
        try:
            self.wfile.write(head + body if self.command != "HEAD" else head)
            self.wfile.flush()
        except OSError as e:
            log.debug("%s %s: client gone: %s", self.command, self.path, e)
            self.close_connection = True
        return status


class Front(ThreadingHTTPServer):
    """The running front: serve_forever() in a thread, shutdown() from another."""

    daemon_threads = True
    #: the listen backlog: socketserver's 5 made a burst of a few dozen connections overflow
    #: the accept queue, and those clients got resets or waits, not answers. listen() clamps
    #: it to the system's limit (net.core.somaxconn), so ask for at least 4096, whatever
    #: socket.SOMAXCONN (a constant of the C headers Python was built with, 128 on some) says
    request_queue_size = max(socket.SOMAXCONN, 4096)

    def __init__(
        self,
        address: tuple[str, int],
        app: Chalice,
        config: Config,
        routes: list[tuple[str, re.Pattern[str], streaming.Handler]],
    ) -> None:
        self.app, self.config, self.routes = app, config, routes
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._serving = threading.Event()
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:  # HTTPServer's looks the host name up (getfqdn): slow
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._serving.set()
        super().serve_forever(poll_interval)

    def shutdown(self) -> None:
        """Stop accepting; close the listening socket and every open connection."""
        if self._serving.is_set():  # socketserver's shutdown waits for serve_forever to end
            super().shutdown()
        self.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            log.debug("connection from %s: %s", client_address, sys.exc_info()[1])
        else:
            log.exception("connection from %s failed", client_address)


def create_front(
    app: Chalice,
    config: Config,
    host: str,
    port: int,
    streaming_routes: Sequence[streaming.StreamingRoute] = (),
) -> Front:
    """Serve `app` on host:port (port 0: a free one, see Front.server_address)."""
    if not isinstance(app, LocalChalice):  # current_request per thread, as create_local_server
        cls = type(app)
        app.__class__ = type(f"Local{cls.__name__}", (LocalChalice, cls), {})
    routes = [(m.upper(), re.compile(regex), handler) for m, regex, handler in streaming_routes]
    return Front((host, port), app, config, routes)
