"""A Koji hub as a content generator meets it, through the koji library over XML-RPC: log in,
reserve a build (``CGInitBuild``), upload files into a work directory (``uploadWrapper``),
import them as the build (``CGImport``), or give the reservation back (``CGRefundBuild``).

The service reserves and refunds; a build host uploads and imports (builders/koji_import.py).
Both read the hubs they may use, and how to log in to each, from ``KILN_KOJI_HUBS``::

    {"https://koji.example.com/kojihub": {"user": "kiln", "password": "...",
                                          "content_generator": "osbuild"}}

Login is by password (``user``/``password``), by TLS client certificate (``cert``, with
``serverca``), or none. Every failure is a ``KojiCGError`` whose text is the hub's."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import koji  # type: ignore[import-untyped]

from chalicelib.config import json_object

#: what the build states are called when a reservation is given back
BUILD_FAILED = koji.BUILD_STATES["FAILED"]
BUILD_CANCELED = koji.BUILD_STATES["CANCELED"]
_KEYS = ("user", "password", "cert", "serverca", "content_generator", "timeout")


class KojiCGError(Exception):
    """The hub refused or could not be reached; the message says what the hub said."""


@dataclasses.dataclass(frozen=True)
class HubAccess:
    url: str
    user: str = ""
    password: str = ""
    cert: str = ""  # a PEM file with the client certificate and key
    serverca: str = ""
    content_generator: str = "osbuild"  # the CG name the hub granted Kiln's user
    timeout: int = 120


def parse_hubs(text: str) -> dict[str, HubAccess]:
    """The hubs ``KILN_KOJI_HUBS`` names, by URL; ValueError saying what is wrong."""
    found = json_object(text, "KILN_KOJI_HUBS")
    hubs = {}
    for url, options in found.items():
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"KILN_KOJI_HUBS: {url!r} is not an http(s) hub URL")
        if not isinstance(options, dict):
            raise ValueError(f"KILN_KOJI_HUBS[{url!r}] must be an object")
        unknown = sorted(set(options) - set(_KEYS))
        if unknown:
            raise ValueError(
                f"KILN_KOJI_HUBS[{url!r}]: unknown {', '.join(unknown)}; known: {', '.join(_KEYS)}"
            )
        if bool(options.get("user")) != bool(options.get("password")):
            raise ValueError(f"KILN_KOJI_HUBS[{url!r}]: give both user and password, or neither")
        timeout = options.get("timeout", 120)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
            raise ValueError(f"KILN_KOJI_HUBS[{url!r}].timeout must be a positive integer")
        values = {k: options[k] for k in _KEYS if k in options and k != "timeout"}
        if not all(isinstance(v, str) for v in values.values()):
            raise ValueError(f"KILN_KOJI_HUBS[{url!r}]: user, password, cert... are strings")
        hubs[url.rstrip("/")] = HubAccess(url=url.rstrip("/"), timeout=timeout, **values)
    return hubs


def _text(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


class ContentGenerator:
    """Kiln as a content generator on one hub; one logged-in session per instance."""

    def __init__(self, access: HubAccess) -> None:
        self.access = access
        self._session: Any = None

    def _hub(self) -> Any:
        if self._session is not None:
            return self._session
        access = self.access
        opts = {
            "timeout": access.timeout,
            "max_retries": 2,
            "retry_interval": 1,
            "anon_retry": False,
            "user": access.user,
            "password": access.password,
            "use_fast_upload": True,
        }
        try:
            session = koji.ClientSession(access.url, opts=opts)
            if access.user:
                session.login()
            elif access.cert:
                session.ssl_login(cert=access.cert, serverca=access.serverca or None)
        except Exception as exc:
            raise KojiCGError(f"could not log in to {access.url}: {_text(exc)}") from exc
        self._session = session
        return session

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._hub(), method)(*args)
        except KojiCGError:
            raise
        except Exception as exc:
            raise KojiCGError(f"{method}: {_text(exc)}") from exc

    def init_build(self, name: str, version: str, release: str) -> tuple[int, str]:
        """Reserve the build N-V-R: its build id and the token that imports it."""
        data = {"name": name, "version": version, "release": release}
        found = self._call("CGInitBuild", self.access.content_generator, data)
        try:
            return int(found["build_id"]), str(found["token"])
        except (KeyError, TypeError, ValueError) as exc:
            raise KojiCGError(f"CGInitBuild answered {found!r}") from exc

    def refund(self, build_id: int, token: str, state: int = BUILD_FAILED) -> None:
        """Give back a reserved build that will not be imported (it shows failed)."""
        self._call("CGRefundBuild", self.access.content_generator, build_id, token, state)

    def upload(self, path: Path, directory: str, name: str) -> None:
        self._call("uploadWrapper", str(path), directory, name)

    def import_build(self, metadata: dict[str, Any], directory: str, token: str) -> int:
        """Import the files uploaded to ``directory`` as the reserved build; its build id."""
        found = self._call("CGImport", json.dumps(metadata), directory, token)
        try:
            return int(found["id"] if "id" in found else found["build_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise KojiCGError(f"CGImport answered {found!r}") from exc

    def close(self) -> None:
        if self._session is not None:
            with contextlib.suppress(Exception):  # a session the hub forgot is closed anyway
                self._session.logout()
            self._session.rsession.close()
            self._session = None
