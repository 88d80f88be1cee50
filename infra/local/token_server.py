"""The local stack's OAuth2 token endpoint: ``POST /oauth2/token``, the client credentials grant
(RFC 6749 §4.4) for the service accounts in service_accounts.py.

A client authenticates (§2.3.1) with ``client_id`` and ``client_secret`` in the form body or
with HTTP Basic, not both (with Basic, the body may repeat the same ``client_id``). The answer is
a JWT signed with the stack's key, as `make token` mints, for the account's tenant and role,
with the client_id as its subject; it lives ``KILN_SERVICE_TOKEN_SECONDS`` (900). There is no
refresh token: a client asks again. ``scope`` is accepted and ignored (Kiln's tokens carry a
role, not scopes), and the answer has no ``scope``. Errors are §5.2's JSON. Local only: on AWS
the operator's identity provider issues the tokens (docs/service-accounts.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from infra.local import tokens
from infra.local.service_accounts import ServiceAccounts

TOKEN_PATH = "/oauth2/token"
MAX_BODY = 64 * 1024
_DRAIN_LIMIT = 1024 * 1024  # an oversized body up to this is read (and dropped) before the 400
FORM = "application/x-www-form-urlencoded"
GRANT = "client_credentials"
REALM = "kiln"
STACK_LABEL = "make-up"  # the account each `make up` makes, replacing its previous start's
log = logging.getLogger("kiln.tokens")


def ttl_from_env() -> int:
    """KILN_SERVICE_TOKEN_SECONDS: how long an access token lives (900 unless set)."""
    value = os.environ.get("KILN_SERVICE_TOKEN_SECONDS", "900")
    if not value.strip().isdigit() or int(value) <= 0:
        raise ValueError(f"KILN_SERVICE_TOKEN_SECONDS={value!r}: must be a positive whole number")
    return int(value)


class OAuthError(Exception):
    def __init__(
        self, status: int, error: str, description: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description
        self.headers = headers or {}


def _invalid(description: str) -> OAuthError:
    return OAuthError(400, "invalid_request", description)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.0 (http.server's default): one request per connection, closed after the answer."""

    server: TokenServer
    timeout = 30  # a client that stops sending does not hold a thread for ever

    def version_string(self) -> str:
        return "kiln-token-server"

    def do_POST(self) -> None:
        try:
            if self._path() != TOKEN_PATH:
                raise OAuthError(404, "not_found", f"no such endpoint; POST {TOKEN_PATH}")
            self._answer(200, self._grant())
        except OAuthError as exc:
            body = {"error": exc.error, "error_description": exc.description}
            self._answer(exc.status, body, exc.headers)

    def _other_method(self) -> None:
        if self._path() != TOKEN_PATH:
            body = {
                "error": "not_found",
                "error_description": f"no such endpoint; POST {TOKEN_PATH}",
            }
            self._answer(404, body)
        else:
            body = {
                "error": "invalid_request",
                "error_description": "the token endpoint takes POST",
            }
            self._answer(405, body, {"Allow": "POST"})

    do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _other_method

    def _path(self) -> str:
        return urllib.parse.urlsplit(self.path).path

    def _grant(self) -> dict[str, Any]:
        params = self._form()
        basic = self._basic_credentials()
        if basic is not None:
            if "client_secret" in params:
                raise _invalid(
                    "send the client's credentials with HTTP Basic or in the body, not both"
                )
            if params.get("client_id", basic[0]) != basic[0]:
                raise _invalid("client_id in the body differs from the one in HTTP Basic")
            client_id, secret = basic
        else:
            client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
            if not client_id or not secret:
                raise _invalid("client_id and client_secret are required (or HTTP Basic)")
        grant_type = params.get("grant_type")
        if not grant_type:
            raise _invalid("grant_type is required")
        account = self.server.accounts.verify(client_id, secret)
        if account is None:
            challenge = {"WWW-Authenticate": f'Basic realm="{REALM}"'} if basic else {}
            raise OAuthError(401, "invalid_client", "unknown client or wrong secret", challenge)
        if grant_type != GRANT:
            raise OAuthError(
                400, "unsupported_grant_type", f"only grant_type={GRANT} is supported here"
            )
        ttl = self.server.ttl_seconds
        token = tokens.mint(
            self.server.private_pem, account.tenant, account.role, ttl, subject=account.client_id
        )
        log.info("issued a %ss token to %s (%s@%s)", ttl, client_id, account.role, account.tenant)
        return {"access_token": token, "token_type": "Bearer", "expires_in": ttl}

    def _form(self) -> dict[str, str]:
        """The body's parameters (§3.1: one each at most; an empty one counts as not sent)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise _invalid("send the body with a Content-Length, not chunked")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _invalid("Content-Length is not a number") from None
        if length < 0:
            raise _invalid("Content-Length is negative")
        if length > MAX_BODY:
            self._drain(length)
            raise _invalid(f"the body is over {MAX_BODY} bytes")
        body = self.rfile.read(length)
        media_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type != FORM:
            raise _invalid(f"the body must be {FORM}")
        try:
            pairs = urllib.parse.parse_qsl(
                body.decode("ascii"), keep_blank_values=True, errors="strict", max_num_fields=64
            )
        except (UnicodeDecodeError, ValueError):
            raise _invalid(f"the body is not valid {FORM}") from None
        repeated = sorted(name for name, count in Counter(n for n, _ in pairs).items() if count > 1)
        if repeated:
            raise _invalid(f"parameters sent more than once: {', '.join(repeated)}")
        return {name: value for name, value in pairs if value}

    def _drain(self, length: int) -> None:
        """Read an oversized body away (up to a limit), so the client sees the 400, not a reset."""
        left = min(length, _DRAIN_LIMIT)
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                return
            left -= len(chunk)

    def _basic_credentials(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization")
        if not header:
            return None
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return None  # not client authentication (say, a stale Bearer token): ignored
        try:
            user, colon, password = (
                base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            user, colon, password = "", "", ""
        if not colon or not user:
            challenge = {"WWW-Authenticate": f'Basic realm="{REALM}"'}
            raise OAuthError(401, "invalid_client", "malformed HTTP Basic credentials", challenge)
        # §2.3.1: both are form-urlencoded before Basic encodes them
        return urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(password)

    def _answer(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class TokenServer(ThreadingHTTPServer):
    """The endpoint on ``host``:``port`` (0: any free port); ``start()`` serves it from a
    thread, ``shutdown()`` stops it and closes the socket."""

    daemon_threads = True

    def __init__(
        self,
        state_dir: Path,
        private_pem: bytes,
        host: str = "127.0.0.1",
        port: int = 0,
        ttl_seconds: int | None = None,
    ) -> None:
        self.accounts = ServiceAccounts(state_dir)
        self.private_pem = private_pem
        self.ttl_seconds = ttl_seconds if ttl_seconds is not None else ttl_from_env()
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def token_url(self) -> str:
        host = str(self.server_address[0])
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}{TOKEN_PATH}"

    def start(self) -> TokenServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="tokens", daemon=True
        )
        self._thread.start()
        return self

    def shutdown(self) -> None:
        if self._thread is not None:
            super().shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.shutdown()


def serve_for_stack(state_dir: Path, port: int) -> tuple[TokenServer, dict[str, Any]]:
    """`make up`'s endpoint (signing with the state dir's key), and a fresh service account for
    tenant demo, role user, replacing the one the previous start made; returns the server and
    stack.json's part about them (``token_url``, ``service_account``)."""
    private_path, _ = tokens.ensure_keys(state_dir)
    server = TokenServer(state_dir, private_path.read_bytes(), port=port).start()
    client_id, secret = server.accounts.create("demo", "user", STACK_LABEL, replace_label=True)
    account = {"client_id": client_id, "client_secret": secret, "tenant": "demo", "role": "user"}
    return server, {"token_url": server.token_url, "service_account": account}
