"""Greenwave over HTTP, as OMPS asks it (omps-behaviour.md §9, §11): a gating decision on a
Koji build, and the service's version. The base URL ends in ``/`` (a missing one is added);
every call has the timeout, and an answer is read up to ``MAX_ANSWER_BYTES``."""

from __future__ import annotations

import json
from typing import Any

import requests

DECISION = "api/v1.0/decision"
ABOUT = "api/v1.0/about"
#: the most of an answer read (a decision lists its policies' results: small)
MAX_ANSWER_BYTES = 1024 * 1024


class GreenwaveUnavailable(Exception):
    """The request did not get an answer (connection, timeout, an oversized answer)."""


class Greenwave:
    def __init__(self, url: str, timeout: float) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.timeout = timeout

    def decision(self, context: str, product_version: str, nvr: str) -> tuple[int, Any | None]:
        """Greenwave's (status, JSON answer or None when it is not JSON) for the build ``nvr``
        under ``context`` and ``product_version``."""
        payload = {
            "decision_context": context,
            "product_version": product_version,
            "subject_identifier": nvr,
            "subject_type": "koji_build",
        }
        return self._request("POST", DECISION, payload)

    def version(self) -> str:
        """Greenwave's version (``GET api/v1.0/about``); GreenwaveUnavailable with the HTTP
        client's text on an error status, or the missing key, as upstream reports it."""
        url = self.url + ABOUT
        try:
            with requests.get(url, timeout=self.timeout, stream=True) as response:
                response.raise_for_status()
                return str(json.loads(self._read(response, url))["version"])
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            raise GreenwaveUnavailable(str(exc) or type(exc).__name__) from exc

    def _request(self, method: str, path: str, payload: Any) -> tuple[int, Any | None]:
        url = self.url + path
        try:
            with requests.request(
                method, url, json=payload, timeout=self.timeout, stream=True
            ) as response:
                status, body = response.status_code, self._read(response, url)
        except requests.RequestException as exc:
            raise GreenwaveUnavailable(str(exc) or type(exc).__name__) from exc
        try:
            return status, json.loads(body)
        except ValueError:
            return status, None

    @staticmethod
    def _read(response: requests.Response, url: str) -> bytes:
        body = bytearray()
        for chunk in response.iter_content(64 * 1024):
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise GreenwaveUnavailable(f"Answer from {url} is larger than {MAX_ANSWER_BYTES}B")
        return bytes(body)
