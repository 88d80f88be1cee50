"""OMPS's health ping and about (omps-behaviour.md §11).

``ping``: ``{"ok", "status": 200|503, "services": {"quay", "koji", "greenwave"}}``, each service
``{"ok", "details"}`` with ``"It works!"`` or the failure's text; the HTTP status is ``status``.

- ``quay`` is the registry OMPS pushes to, here Kiln's own app registry: one read of a record
  that never exists (a GetItem, never a Scan) and one HEAD of a blob key that never exists, as a
  push writes both.
- ``koji`` is the hub's ``getAPIVersion``. Kiln's choice: ``null`` when no hub is configured
  (``KILN_OMPS_KOJI_HUB_URL``), as upstream answers for an unconfigured Greenwave, so a
  deployment without Koji is healthy (its koji pushes answer that Koji is not configured).
- ``greenwave`` is ``GET <url>api/v1.0/about``; ``null`` unless configured.

``about``: the service version (``omps_version``) and the installed operator-courier's."""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Callable
from typing import Any

from chalicelib.adapters.appregistry_models import AppPackageModel
from chalicelib.adapters.artifacts import ArtifactStore
from chalicelib.adapters.greenwave import Greenwave, GreenwaveUnavailable
from chalicelib.config import Settings
from chalicelib.domain.omps import koji_source

IT_WORKS = "It works!"
#: a package name the registry refuses (names start with a letter or digit): never stored
PROBE_NAMESPACE, PROBE_PACKAGE = "kiln-health", "-probe"
PROBE_BLOB = "appregistry/blobs/sha256/-probe"


def ping(settings: Settings, store: ArtifactStore) -> dict[str, Any]:
    """Every service's check; ``ok`` when all the configured ones work."""
    services: dict[str, dict[str, Any] | None] = {
        "quay": _result(lambda: _registry(store)),
        "koji": None,
        "greenwave": None,
    }
    hub = koji_source.koji_hub(settings)
    if hub is not None:
        services["koji"] = _result(hub.api_version)
    gate = koji_source.greenwave(settings)
    if gate is not None:
        services["greenwave"] = _result(lambda: _greenwave_version(gate))
    ok = all(result["ok"] for result in services.values() if result is not None)
    return {"ok": ok, "status": 200 if ok else 503, "services": services}


def about(settings: Settings) -> dict[str, str]:
    return {
        "version": settings.omps_version,
        "operatorcourier": importlib.metadata.version("operator-courier"),
    }


def _result(check: Callable[[], Any]) -> dict[str, Any]:
    try:
        check()
    except Exception as exc:  # a health check reports any failure, it never raises
        return {"ok": False, "details": str(exc) or type(exc).__name__}
    return {"ok": True, "details": IT_WORKS}


def _registry(store: ArtifactStore) -> None:
    """The app registry's records and blobs answer (the probe is found in neither)."""
    with contextlib.suppress(AppPackageModel.DoesNotExist):
        AppPackageModel.get(PROBE_NAMESPACE, PROBE_PACKAGE)
    store.head(PROBE_BLOB)


def _greenwave_version(gate: Greenwave) -> str:
    """Greenwave's version, or the reason there is none (upstream's message)."""
    try:
        return gate.version()
    except GreenwaveUnavailable as exc:
        raise GreenwaveUnavailable(f"Failed to get Greenwave version: {exc}") from exc
