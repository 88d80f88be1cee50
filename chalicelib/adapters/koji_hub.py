"""Koji as OMPS reads it (omps-behaviour.md §9, §11, §15.7): the hub over XML-RPC through the
koji library, anonymously and without retries (a call answers or fails now, within the
timeout), and a build's files from the Koji root URL over HTTP, with a timeout and a size cap.

Every failure of either — the hub's faults, its transport, a malformed answer, the download's
HTTP status, its size — is a ``KojiUnavailable`` whose text is what OMPS reports (the domain
maps it to ``KojiError``), never an unexpected exception."""

from __future__ import annotations

import time
from typing import Any

import koji  # type: ignore[import-untyped]
import requests

#: bytes read from the file server at a time
CHUNK = 64 * 1024


class KojiUnavailable(Exception):
    """The hub or the file server failed; the message is the text OMPS reports."""


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class KojiHub:
    """One Koji deployment: its hub (``hub_url``) and the root its files are served from
    (``root_url``), read within ``timeout`` seconds, downloads capped at ``max_bytes``."""

    def __init__(self, hub_url: str, root_url: str, timeout: float, max_bytes: int) -> None:
        self.hub_url = hub_url
        self.root_url = root_url
        self.timeout = timeout
        self.max_bytes = max_bytes

    # -- the hub ----------------------------------------------------------------------------
    def _call(self, method: str, *args: Any) -> Any:
        """``method(*args)`` on the hub, in a session of its own (the library's sessions are
        not shared between threads), closed after the call."""
        opts = {"timeout": self.timeout, "anon_retry": False, "max_retries": 0}
        try:
            session: Any = koji.ClientSession(self.hub_url, opts=opts)
        except Exception as exc:  # a hub URL the library refuses
            raise KojiUnavailable(_text(exc)) from exc
        try:
            return getattr(session, method)(*args)
        except Exception as exc:  # faults, transport, malformed answers: all the hub's failure
            raise KojiUnavailable(_text(exc)) from exc
        finally:
            session.rsession.close()

    def build(self, nvr: str) -> dict[str, Any] | None:
        """The build ``nvr`` (``getBuild``), or None when the hub has no such build."""
        found = self._call("getBuild", nvr)
        if found is None:
            return None
        if not isinstance(found, dict):
            raise KojiUnavailable(f"Unexpected answer to getBuild({nvr!r}) from the Koji hub")
        return found

    def api_version(self) -> Any:
        """The hub's API version (``getAPIVersion``): the health check's question."""
        return self._call("getAPIVersion")

    def log_path(self, build: dict[str, Any], filename: str) -> str | None:
        """Where, under the root URL, the build's log file ``filename`` is (the legacy place of
        the operator-manifests archive), or None when the build has no such log."""
        logs = self._call("getBuildLogs", build.get("build_id", build.get("id")))
        for entry in logs if isinstance(logs, list) else []:
            if isinstance(entry, dict) and entry.get("name") == filename:
                path = entry.get("path")
                return str(path) if path else None
        return None

    # -- the files --------------------------------------------------------------------------
    def url(self, relative: str) -> str:
        """``relative`` under the root URL, with exactly one ``/`` between them."""
        return self.root_url.rstrip("/") + "/" + relative.lstrip("/")

    def download(self, url: str) -> bytes:
        """The bytes at ``url``, read within the timeout (per read and in all) and at most
        ``max_bytes`` of them; anything else is KojiUnavailable with the HTTP client's text
        (``404 Client Error: Not Found for url: <url>``)."""
        deadline = time.monotonic() + self.timeout
        try:
            with requests.get(url, stream=True, timeout=self.timeout) as response:
                response.raise_for_status()
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise KojiUnavailable(self._too_large(url, int(declared)))
                received = bytearray()
                for chunk in response.iter_content(CHUNK):
                    received += chunk
                    if len(received) > self.max_bytes:
                        raise KojiUnavailable(self._too_large(url, None))
                    if time.monotonic() > deadline:
                        raise KojiUnavailable(
                            f"Download of {url} did not finish within {self.timeout}s"
                        )
                return bytes(received)
        except requests.RequestException as exc:
            raise KojiUnavailable(_text(exc)) from exc

    def _too_large(self, url: str, size: int | None) -> str:
        found = f"{size}B>" if size is not None else ">"
        return f"Archive {url} is larger than limit ({found}{self.max_bytes}B)"
