"""Tokens from an identity provider Kiln does not run (e.g. Cognito's client-credentials
endpoint): keys read from the provider's JWKS URL, no audience when none is configured (Cognito
access tokens carry ``client_id``, not ``aud``); tenant and role still come from the claims."""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import Kiln

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Kiln"
PATH = "/eu-west-1_Kiln/.well-known/jwks.json"


@pytest.fixture
def provider() -> Iterator[tuple[str, Any]]:
    """A JWKS endpoint on loopback with one RSA key (kid ``k1``); yields its URL and the key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == PATH
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{PATH}", key
    finally:
        server.shutdown()
        server.server_close()


def _token(key: Any, kid: str = "k1", **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "sub": "5kiln0client",
        "client_id": "5kiln0client",
        "token_use": "access",
        "tenant": "demo",
        "role": "user",
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


def _get(kiln: Kiln, token: str) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return kiln.call("GET", "/apis/ims/v3/images", headers=headers)


def test_a_providers_token_is_verified_with_its_jwks(kiln: Kiln, provider: tuple[str, Any]) -> None:
    url, key = provider
    kiln.configure(jwt_key="", jwt_jwks_url=url, jwt_issuer=ISSUER, jwt_audience="")
    assert _get(kiln, _token(key)).status_code == 200
    # another key claiming the same kid, an unknown kid, an expired token, another issuer
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for token in (
        _token(other),
        _token(key, kid="k2"),
        _token(key, exp=int(time.time()) - 10),
        _token(key, iss="https://elsewhere"),
    ):
        answer = _get(kiln, token)
        assert answer.status_code == 401, answer.body


def test_an_audience_when_configured_is_still_required(
    kiln: Kiln, provider: tuple[str, Any]
) -> None:
    url, key = provider
    kiln.configure(jwt_key="", jwt_jwks_url=url, jwt_issuer=ISSUER, jwt_audience="kiln")
    assert _get(kiln, _token(key)).status_code == 401
    assert _get(kiln, _token(key, aud="kiln")).status_code == 200
