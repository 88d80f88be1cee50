"""The local OAuth2 token endpoint (infra/local/token_server.py) and its service accounts, over
HTTP on loopback; the tokens it issues are then used against the app (chalice's test client).
Fast: the one slow check (the `make up` stack's own account) is in tests/e2e."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import stat
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from infra.local import token_server
from infra.local.service_accounts import ServiceAccounts
from infra.local.token_server import TokenServer
from tests.conftest import ROOT, Kiln

COMPOSER = "/api/image-builder-composer/v2"
GRANT = {"grant_type": "client_credentials"}


@pytest.fixture
def server(tmp_path: Path, signing_keys: tuple[bytes, str]) -> Iterator[TokenServer]:
    with TokenServer(tmp_path, signing_keys[0], port=0, ttl_seconds=900) as running:
        yield running


@pytest.fixture
def account(server: TokenServer) -> tuple[str, str]:
    return ServiceAccounts(server.accounts.state_dir).create("acme", "user")


def fetch(server: TokenServer, data: Any = None, **kwargs: Any) -> requests.Response:
    return requests.post(server.token_url, data=data, timeout=10, **kwargs)


def credentials(account: tuple[str, str]) -> dict[str, str]:
    return {**GRANT, "client_id": account[0], "client_secret": account[1]}


def app_status(kiln: Kiln, token: str) -> int:
    """A tenant's GET of a compose that does not exist: 404 when the token is good."""
    response = kiln.client.http.get(
        f"{COMPOSER}/composes/{uuid.uuid4()}", headers={"Authorization": f"Bearer {token}"}
    )
    return int(response.status_code)


def test_form_credentials_get_a_bearer_token_the_app_accepts(
    server: TokenServer, account: tuple[str, str], kiln: Kiln
) -> None:
    response = fetch(server, credentials(account))
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["tenant"], claims["role"]) == (account[0], "acme", "user")
    assert 899 <= claims["exp"] - claims["iat"] <= 900
    assert app_status(kiln, body["access_token"]) == 404
    assert app_status(kiln, body["access_token"] + "x") == 401


def test_basic_credentials_work_alone_or_with_the_same_client_id_in_the_body(
    server: TokenServer, account: tuple[str, str]
) -> None:
    client_id, secret = account
    assert fetch(server, GRANT, auth=(client_id, secret)).status_code == 200
    same_id = fetch(server, {**GRANT, "client_id": client_id}, auth=(client_id, secret))
    assert same_id.status_code == 200, same_id.text
    # RFC 6749 §2.3.1: the id and secret are form-urlencoded before Basic encodes them
    encoded = base64.b64encode(
        f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}".encode()
    ).decode()
    headers = {"Authorization": f"Basic {encoded}"}
    assert fetch(server, GRANT, headers=headers).status_code == 200
    # another scheme is no client authentication: ignored (a client that sends its old Bearer
    # token along still gets a new one with the credentials in the body)
    bearer = fetch(server, credentials(account), headers={"Authorization": "Bearer old"})
    assert bearer.status_code == 200, bearer.text
    both = fetch(server, {**GRANT, "client_secret": secret}, auth=(client_id, secret))
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"
    other_id = fetch(server, {**GRANT, "client_id": "kiln-sa-other"}, auth=(client_id, secret))
    assert other_id.status_code == 400 and other_id.json()["error"] == "invalid_request"


def test_a_wrong_secret_or_an_unknown_client_is_invalid_client(
    server: TokenServer, account: tuple[str, str]
) -> None:
    client_id, secret = account
    for data, auth in [
        ({**GRANT, "client_id": client_id, "client_secret": secret + "x"}, None),
        ({**GRANT, "client_id": "kiln-sa-unknown", "client_secret": secret}, None),
        (GRANT, (client_id, "wrong")),
        (GRANT, ("kiln-sa-unknown", secret)),
    ]:
        response = fetch(server, data, auth=auth)
        assert response.status_code == 401, (data, auth)
        assert response.json()["error"] == "invalid_client"
        assert response.headers["Cache-Control"] == "no-store"
        if auth:  # Basic was used: the challenge says how to authenticate
            assert response.headers["WWW-Authenticate"] == 'Basic realm="kiln"'
        else:
            assert "WWW-Authenticate" not in response.headers
    garbled = fetch(server, GRANT, headers={"Authorization": "Basic !!not-base64"})
    assert garbled.status_code == 401 and garbled.json()["error"] == "invalid_client"


def test_another_grant_type_is_unsupported(server: TokenServer, account: tuple[str, str]) -> None:
    for grant in ("password", "authorization_code", "refresh_token"):
        response = fetch(server, {**credentials(account), "grant_type": grant})
        assert response.status_code == 400
        assert response.json()["error"] == "unsupported_grant_type"
        assert response.json()["error_description"]


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("case", "body", "content_type"),
    [
        ("no grant_type", "client_id={id}&client_secret={secret}", FORM),
        ("empty grant_type", "grant_type=&client_id={id}&client_secret={secret}", FORM),
        ("no secret", "grant_type=client_credentials&client_id={id}", FORM),
        ("no credentials", "grant_type=client_credentials", FORM),
        ("empty body", "", FORM),
        (
            "grant_type twice",
            "grant_type=client_credentials&grant_type=client_credentials"
            "&client_id={id}&client_secret={secret}",
            FORM,
        ),
        (
            "client_id twice",
            "grant_type=client_credentials&client_id={id}&client_id={id}&client_secret={secret}",
            FORM,
        ),
        (
            "JSON",
            '{{"grant_type": "client_credentials", "client_id": "{id}", '
            '"client_secret": "{secret}"}}',
            "application/json",
        ),
        (
            "no content type",
            "grant_type=client_credentials&client_id={id}&client_secret={secret}",
            None,
        ),
        (
            "not UTF-8",
            "grant_type=client_credentials%FF&client_id={id}&client_secret={secret}",
            FORM,
        ),
    ],
)
def test_malformed_requests_are_invalid_request(
    server: TokenServer,
    account: tuple[str, str],
    case: str,
    body: str,
    content_type: str | None,
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    data = body.format(id=account[0], secret=account[1]).encode()
    response = fetch(server, data, headers=headers)
    assert response.status_code == 400, (case, response.text)
    assert response.json()["error"] == "invalid_request", case
    assert response.json()["error_description"]


def test_an_oversized_body_is_refused_with_a_400(
    server: TokenServer, account: tuple[str, str]
) -> None:
    padding = "x" * (64 * 1024)
    data = urllib.parse.urlencode({**credentials(account), "padding": padding})
    response = fetch(server, data, headers={"Content-Type": FORM})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "64" in response.json()["error_description"] or "65536" in response.text
    # just under the limit, unknown parameters are ignored (RFC 6749 §3.1)
    data = urllib.parse.urlencode({**credentials(account), "padding": padding[:60000]})
    assert fetch(server, data, headers={"Content-Type": FORM}).status_code == 200


def test_a_scope_is_accepted_and_not_echoed(server: TokenServer, account: tuple[str, str]) -> None:
    response = fetch(server, {**credentials(account), "scope": "kiln/compose"})
    assert response.status_code == 200
    assert "scope" not in response.json()


def test_other_methods_get_405_and_other_paths_404(server: TokenServer) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        response = requests.request(method, server.token_url, timeout=10)
        assert response.status_code == 405, method
        assert response.headers["Allow"] == "POST"
    assert requests.head(server.token_url, timeout=10).status_code == 405
    base = server.token_url.removesuffix("/oauth2/token")
    for path in ("/", "/oauth2/token/", "/oauth2/authorize", "/token"):
        assert requests.post(base + path, data=GRANT, timeout=10).status_code == 404, path
        assert requests.get(base + path, timeout=10).status_code == 404, path


class RetryingClient:
    """What koji-osbuild's builder plugin does with a token endpoint: fetch a token when it
    has none or believes it expired (by ``expires_in``), and on a 401 from the API fetch a new
    one and try once more."""

    def __init__(self, kiln: Kiln, token_url: str, client_id: str, secret: str) -> None:
        self.kiln, self.token_url = kiln, token_url
        self.client_id, self.secret = client_id, secret
        self.token: str | None = None
        self.good_until = 0.0
        self.fetches = 0
        self.statuses: list[int] = []

    def fetch_token(self) -> None:
        asked = time.time()
        response = requests.post(
            self.token_url,
            data={**GRANT, "client_id": self.client_id, "client_secret": self.secret},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        self.token, self.good_until = body["access_token"], asked + int(body["expires_in"])
        self.fetches += 1

    def get(self, path: str) -> Any:
        if self.token is None or time.time() > self.good_until:
            self.fetch_token()
        response = self._send(path)
        if response.status_code == 401:
            self.fetch_token()
            response = self._send(path)
        return response

    def _send(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        response = self.kiln.client.http.get(path, headers=headers)
        self.statuses.append(response.status_code)
        return response


def test_an_expired_token_gets_401_and_a_refetched_one_works(
    tmp_path: Path, signing_keys: tuple[bytes, str], kiln: Kiln
) -> None:
    # 2 s: whole-second claims leave a fresh token at least 1 s of life, plenty for one call
    with TokenServer(tmp_path, signing_keys[0], ttl_seconds=2) as short:
        client_id, secret = ServiceAccounts(tmp_path).create("demo", "user")
        client = RetryingClient(kiln, short.token_url, client_id, secret)
        path = f"{COMPOSER}/composes/{uuid.uuid4()}"
        assert client.get(path).status_code == 404 and client.fetches == 1
        expired = client.token
        assert expired is not None
        exp = jwt.decode(expired, options={"verify_signature": False})["exp"]
        time.sleep(max(0.0, exp - time.time()) + 0.2)
        assert app_status(kiln, expired) == 401
        # the client's clock runs behind the server's: it still believes its token is good,
        # sends it, gets the 401, fetches a new token and tries again
        client.good_until = time.time() + 3600
        client.statuses.clear()
        assert client.get(path).status_code == 404
        assert client.statuses == [401, 404] and client.fetches == 2
        assert client.token != expired
        # once expires_in has passed by the client's clock, it refreshes first: no 401 at all
        client.good_until = time.time() - 1
        client.statuses.clear()
        assert client.get(path).status_code == 404
        assert client.statuses == [404] and client.fetches == 3


def run_cli(state_dir: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "infra.local.tokens", "--service-account"]
        + ["--state-dir", str(state_dir), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(done.stdout))


def test_make_token_service_account_creates_an_account_that_gets_tokens(
    tmp_path: Path, signing_keys: tuple[bytes, str], kiln: Kiln
) -> None:
    with TokenServer(tmp_path, signing_keys[0]) as running:
        (tmp_path / "stack.json").write_text(json.dumps({"token_url": running.token_url}))
        made = run_cli(tmp_path, "--tenant", "acme", "--role", "admin")
        assert set(made) == {"client_id", "client_secret", "tenant", "role", "token_url"}
        assert made["client_id"].startswith("kiln-sa-")
        assert (made["tenant"], made["role"], made["token_url"]) == (
            "acme",
            "admin",
            running.token_url,
        )
        response = requests.post(
            made["token_url"],
            data=GRANT,
            auth=(made["client_id"], made["client_secret"]),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        assert jwt.decode(token, options={"verify_signature": False})["role"] == "admin"
        assert app_status(kiln, token) == 404
    # the secret is stored only as a salted hash, in a file only its owner reads
    stored = tmp_path / "service-accounts.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert made["client_secret"] not in stored.read_text()
    assert "scrypt$" in stored.read_text()
    # without a running stack, no token_url
    assert "token_url" not in run_cli(tmp_path / "fresh")


def test_concurrent_creates_from_threads_and_processes_all_persist(
    tmp_path: Path, signing_keys: tuple[bytes, str]
) -> None:
    store = ServiceAccounts(tmp_path)
    start = threading.Barrier(6)

    def create(n: int) -> tuple[str, str]:
        start.wait()
        return store.create(f"tenant-{n}", "user")

    with concurrent.futures.ThreadPoolExecutor(9) as pool:
        processes = [pool.submit(run_cli, tmp_path, "--tenant", f"cli-{n}") for n in range(3)]
        threads = [pool.submit(create, n) for n in range(6)]
        made = [f.result() for f in threads]
        by_cli = [f.result() for f in processes]
    ids = {a.client_id for a in store.all()}
    assert ids == {c for c, _ in made} | {m["client_id"] for m in by_cli}
    assert {a.tenant for a in store.all()} == {f"tenant-{n}" for n in range(6)} | {
        f"cli-{n}" for n in range(3)
    }
    with TokenServer(tmp_path, signing_keys[0]) as running:
        for client_id, secret in [
            made[0],
            made[-1],
            *[(m["client_id"], m["client_secret"]) for m in by_cli],
        ]:
            response = requests.post(
                running.token_url, data=GRANT, auth=(client_id, secret), timeout=10
            )
            assert response.status_code == 200, response.text
    assert not list(tmp_path.glob(".service-accounts.*"))  # no temporary file left behind


def test_each_stack_start_replaces_its_own_account_and_keeps_the_others(
    tmp_path: Path, signing_keys: tuple[bytes, str]
) -> None:
    (tmp_path / "jwt-private.pem").write_bytes(signing_keys[0])
    kept = ServiceAccounts(tmp_path).create("acme", "user")
    first, first_info = token_server.serve_for_stack(tmp_path, 0)
    first.shutdown()
    second, info = token_server.serve_for_stack(tmp_path, 0)
    try:
        assert info["token_url"] == second.token_url
        assert {k: info["service_account"][k] for k in ("tenant", "role")} == {
            "tenant": "demo",
            "role": "user",
        }
        old, new = first_info["service_account"], info["service_account"]
        for sa, status in [
            (old, 401),
            (new, 200),
            ({"client_id": kept[0], "client_secret": kept[1]}, 200),
        ]:
            response = requests.post(
                second.token_url,
                data={**GRANT, "client_id": sa["client_id"], "client_secret": sa["client_secret"]},
                timeout=10,
            )
            assert response.status_code == status, (sa, response.text)
        assert len(ServiceAccounts(tmp_path).all()) == 2
    finally:
        second.shutdown()
