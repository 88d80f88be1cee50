"""A composer API client that gets its token by OAuth2 client credentials, written for the tests
after koji-osbuild's builder plugin's behaviour: form-encoded ``client_id``/``client_secret``
to the token URL; a new token once ``expires_in`` has passed by its own clock; on a 401, one new
token and one retry."""

from __future__ import annotations

import time
from typing import Any

import requests

API_BASE = "api/image-builder-composer/v2/"


class ComposerClient:
    """A composer client with OAuth2 client credentials, as koji-osbuild's builder uses."""

    def __init__(self, url: str, client_id: str, secret: str, token_url: str) -> None:
        self.url = f"{url}/{API_BASE}"
        self.credentials = {"client_id": client_id, "client_secret": secret}
        self.token_url = token_url
        self.http = requests.Session()
        self.token = ""
        self.expires_at = 0.0
        self.fetched = 0
        self.unauthorized = 0

    def fetch_token(self) -> None:
        started = time.time()
        data = {"grant_type": "client_credentials", **self.credentials}
        answer = self.http.post(self.token_url, data=data, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        self.token, self.expires_at = body["access_token"], started + int(body["expires_in"])
        self.fetched += 1

    def request(self, method: str, path: str, body: Any = None, refresh: bool = True) -> Any:
        if refresh and (not self.token or time.time() > self.expires_at):
            self.fetch_token()
        response = self._send(method, path, body)
        if response.status_code == 401:  # expired on its way: a new token, and once more
            self.unauthorized += 1
            self.fetch_token()
            response = self._send(method, path, body)
        return response

    def _send(self, method: str, path: str, body: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        return self.http.request(method, self.url + path, json=body, headers=headers, timeout=60)
