"""A Cachito client that behaves as atomic-reactor's ``CachitoAPI`` does (cachito-behaviour.md
§11), so the tests meet Kiln the way OSBS does: the base URL without ``/api/v1``; every call,
POST included, retried on 408/429/5xx; polling ``GET /requests/{id}`` with a timeout counted
from the last change of ``updated``; a streamed download that follows redirects and checks the
final response's ``Digest`` as a whole string; environment variables of kind path joined onto
the source directory; configuration files written under it."""

from __future__ import annotations

import base64
import datetime
import hashlib
import time
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


class CachitoAPIError(Exception):
    pass


class CachitoAPIInvalidRequest(CachitoAPIError):
    pass


class CachitoAPIRequestTimeout(CachitoAPIError):
    pass


class CachitoAPIUnsuccessfulRequest(CachitoAPIError):
    pass


def _session(token: str | None, backoff: float) -> requests.Session:
    session = requests.Session()
    retry = Retry(
        total=10,
        backoff_factor=backoff,
        status_forcelist=(408, 429, 500, 502, 503, 504),
        allowed_methods=False,  # every method, POST included
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


class CachitoAPI:
    def __init__(self, api_url: str, token: str | None = None, backoff: float = 5) -> None:
        self.api_url = api_url.rstrip("/")
        self.session = _session(token, backoff)

    def _url(self, path: str) -> str:
        return f"{self.api_url}/api/v1/{path}"

    def request_sources(
        self,
        repo: str,
        ref: str,
        user: str | None = None,
        pkg_managers: list[str] | None = None,
        flags: list[str] | None = None,
        dependency_replacements: list[dict[str, Any]] | None = None,
        packages: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = {
            "repo": repo,
            "ref": ref,
            "user": user,
            "pkg_managers": pkg_managers,
            "flags": flags,
            "dependency_replacements": dependency_replacements,
            "packages": packages,
        }
        body = {key: value for key, value in body.items() if value is not None}
        response = self.session.post(self._url("requests"), json=body, timeout=600)
        if response.status_code == 400:
            raise CachitoAPIInvalidRequest(response.json()["error"])
        response.raise_for_status()
        return dict(response.json())

    def wait_for_request(
        self, request_id: int, burst_retry: float = 1, slow_retry: float = 2, timeout: float = 3600
    ) -> dict[str, Any]:
        """Poll until complete; the timeout counts from the last change of ``updated``."""
        url = self._url(f"requests/{request_id}")
        started = time.monotonic()
        last_updated, last_change = None, time.monotonic()
        while True:
            response = self.session.get(url, timeout=600)
            response.raise_for_status()
            request = dict(response.json())
            updated = request["updated"]
            parsed = datetime.datetime.fromisoformat(updated)
            assert parsed.tzinfo is None, "updated must be naive UTC (the client subtracts utcnow)"
            if updated != last_updated:
                last_updated, last_change = updated, time.monotonic()
            state = request["state"]
            if state in ("failed", "stale"):
                raise CachitoAPIUnsuccessfulRequest(
                    f"Cachito request is in {state} state, reason: {request['state_reason']}; "
                    f"repo {request['repo']} ref {request['ref']}; logs {url}/logs"
                )
            if state == "complete":
                if not all(key in request for key in ("packages", "ref", "repo")):
                    raise CachitoAPIError("Received invalid source request")
                return request
            if time.monotonic() - last_change > timeout:
                raise CachitoAPIRequestTimeout(f"request {request_id} did not move in {timeout} s")
            time.sleep(burst_retry if time.monotonic() - started < 30 else slow_retry)

    def download_sources(self, request_id: int, dest: Path) -> Path:
        url = self._url(f"requests/{request_id}/download")
        with self.session.get(url, stream=True, timeout=600) as response:
            response.raise_for_status()
            digest = hashlib.sha256()
            with dest.open("wb") as f:
                for chunk in response.iter_content(chunk_size=1024 * 1024):
                    digest.update(chunk)
                    f.write(chunk)
            header = response.headers.get("Digest")
            if header is not None:
                expected = "sha-256=" + base64.b64encode(digest.digest()).decode()
                if header != expected:
                    raise CachitoAPIError(f"Digest {header!r} does not match {expected!r}")
            self.last_digest = header
        return dest

    def get_request_env_vars(self, request_id: int) -> dict[str, Any]:
        response = self.session.get(self._url(f"requests/{request_id}/environment-variables"))
        response.raise_for_status()
        return dict(response.json())

    def get_request_config_files(self, request_id: int) -> list[dict[str, Any]]:
        response = self.session.get(self._url(f"requests/{request_id}/configuration-files"))
        response.raise_for_status()
        return list(response.json())

    def get_image_content_manifest(self, request_ids: list[int]) -> dict[str, Any]:
        ids = ",".join(str(i) for i in request_ids)
        response = self.session.get(self._url("content-manifest"), params={"requests": ids})
        response.raise_for_status()
        return dict(response.json())

    def get_sbom(self, request_ids: list[int]) -> dict[str, Any]:
        ids = ",".join(str(i) for i in request_ids)
        response = self.session.get(self._url("sbom"), params={"requests": ids})
        response.raise_for_status()
        return dict(response.json())


def apply_remote_source(
    root: Path, env_vars: dict[str, Any], files: list[dict[str, Any]]
) -> dict[str, str]:
    """What atomic-reactor does with a downloaded bundle's settings: configuration files
    written under the source directory, ``path`` variables joined onto it. Returns the env."""
    for item in files:
        assert item["type"] == "base64"
        target = root / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(item["content"]))
    env = {}
    for name, spec in env_vars.items():
        if spec["kind"] == "path":
            env[name] = str(root / spec["value"])
        elif spec["kind"] == "literal":
            env[name] = spec["value"]
        else:
            raise CachitoAPIError(f"unknown env var kind {spec['kind']}")
    return env
