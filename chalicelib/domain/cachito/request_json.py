"""A Cachito request as JSON (cachito-behaviour.md §3), and the documents read from its package
data (``packages.json`` in S3, written by the build host).

Non-verbose (lists, ``/requests/latest``): counts of packages and dependencies. Verbose (one
request, ``?verbose=true``, the POST's 201): absolute URLs of its sub-resources, the state
history newest first, and, while the request is ``complete``, its packages and the
deduplicated union of their dependencies. Keys upstream only shows for a failed request
(``error_origin``, ``error_type``) are absent otherwise, never null."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore, ObjectMissing
from chalicelib.adapters.cachito_models import CachitoRequestModel
from chalicelib.adapters.models import JobModel

API = "/api/v1"
#: dependency types that carry ``dev`` (the others never show it)
DEV_TYPES = ("npm", "pip", "yarn")


def request_url(base: str, request_id: int, tail: str = "") -> str:
    """The absolute URL of a request (``tail``: one of its sub-resources)."""
    return f"{base}{API}/requests/{request_id}{tail}"


def read_json(store: ArtifactStore, key: str | None) -> Any:
    """A JSON document in S3, or None when there is no key or no object (removed when the
    request went stale)."""
    if not key:
        return None
    try:
        return json.loads(store.read(key))
    except ObjectMissing:
        return None


def package_data(request: CachitoRequestModel, store: ArtifactStore) -> dict[str, Any]:
    """The request's package data document (``{}`` when it has none)."""
    document = read_json(store, request.packages_key)
    return document if isinstance(document, dict) else {}


def raw_packages(request: CachitoRequestModel, store: ArtifactStore) -> list[dict[str, Any]]:
    """The packages of a complete request as the host wrote them (purls included); ``[]``
    in any other state."""
    if request.state != "complete":
        return []
    packages = package_data(request, store).get("packages")
    return list(packages) if isinstance(packages, list) else []


def _sort_key(item: dict[str, Any]) -> tuple[str, bool, str, str]:
    """Upstream's order: type, dev, name, version."""
    return (
        str(item.get("type") or ""),
        bool(item.get("dev", False)),
        str(item.get("name") or ""),
        str(item.get("version") or ""),
    )


def _identity(item: dict[str, Any]) -> tuple[Any, ...]:
    return item.get("name"), item.get("type"), item.get("version"), item.get("dev", False)


def _dependency(raw: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "name": raw.get("name"),
        "type": raw.get("type"),
        "version": raw.get("version"),
    }
    if raw.get("type") in DEV_TYPES:
        shown["dev"] = bool(raw.get("dev", False))
    replaces = raw.get("replaces")
    shown["replaces"] = (
        {key: replaces.get(key) for key in ("name", "type", "version")}
        if isinstance(replaces, dict)
        else None
    )
    return shown


def _package(raw: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "name": raw.get("name"),
        "type": raw.get("type"),
        "version": raw.get("version"),
    }
    if raw.get("path") not in (None, "", "."):
        shown["path"] = raw["path"]
    shown["dependencies"] = sorted(
        (_dependency(d) for d in raw.get("dependencies") or []), key=_sort_key
    )
    return shown


def unique_dependencies(packages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every package's dependencies, sorted by type, dev, name and version, each
    (name, type, version, dev) once."""
    union: list[dict[str, Any]] = []
    for dependency in sorted(
        (d for package in packages for d in package["dependencies"]), key=_sort_key
    ):
        if not union or _identity(union[-1]) != _identity(dependency):
            union.append(dependency)
    return union


def shown_packages(request: CachitoRequestModel, store: ArtifactStore) -> list[dict[str, Any]]:
    """The packages as the API shows them (no purls), upstream's order."""
    return sorted((_package(p) for p in raw_packages(request, store)), key=_sort_key)


def environment_variables(request: CachitoRequestModel) -> dict[str, dict[str, str]]:
    """``{NAME: {"value", "kind"}}``, ordered by name."""
    found = request.environment_variables or {}
    return {
        name: {"value": str(info.get("value", "")), "kind": str(info.get("kind", ""))}
        for name, info in sorted(found.items())
        if isinstance(info, dict)
    }


def request_json(
    request: CachitoRequestModel, base: str, verbose: bool, store: ArtifactStore
) -> dict[str, Any]:
    """The request as Cachito shows it; ``base``: the API's scheme and host."""
    request_id = int(request.id)
    shown: dict[str, Any] = {
        "id": request_id,
        "created": request.created,
        "repo": request.repo,
        "ref": request.ref,
        "pkg_managers": list(request.pkg_managers or []),
        "user": request.user or None,  # none when login is disabled, as upstream shows it
        "environment_variables": {
            name: info["value"] for name, info in environment_variables(request).items()
        },
        "flags": sorted(request.flags or []),
        "submitted_by": request.submitted_by,
    }
    if verbose:
        shown["configuration_files"] = request_url(base, request_id, "/configuration-files")
        shown["content_manifest"] = request_url(base, request_id, "/content-manifest")
        shown["environment_variables_info"] = request_url(
            base, request_id, "/environment-variables"
        )
        shown["state_history"] = [
            {
                "state": entry.get("state"),
                "state_reason": entry.get("state_reason"),
                "updated": entry.get("updated"),
            }
            for entry in reversed(request.state_history or [])
        ]
        packages = shown_packages(request, store)
        shown["packages"] = packages
        shown["dependencies"] = unique_dependencies(packages)
        shown["logs"] = {"url": request_url(base, request_id, "/logs")}
        job = records.find(JobModel, request.job_id) if request.job_id else None
        if job is not None and job.timing:  # Kiln's extension (docs/build-cost.md)
            shown["timing"] = job.timing
    else:
        shown["packages"] = _count(request.packages_count)
        shown["dependencies"] = _count(request.dependencies_count)
    if request.error_origin and request.error_type:  # recorded only when it failed
        shown["error_origin"] = request.error_origin
        shown["error_type"] = request.error_type
    shown["state"] = request.state
    shown["state_reason"] = request.state_reason
    shown["updated"] = request.updated
    return shown


def _count(value: Any) -> int | None:
    return None if value is None else int(value)


def configuration_files(request: CachitoRequestModel, store: ArtifactStore) -> list[dict[str, str]]:
    """The request's configuration files: those of its package data and those workers
    added; each (path, content) once, sorted by path."""
    found: list[Any] = list(package_data(request, store).get("configuration_files") or [])
    added = read_json(store, request.configuration_files_key)
    found += added if isinstance(added, list) else []
    unique: dict[tuple[str, str], dict[str, str]] = {}
    for item in found:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            content = str(item.get("content", ""))
            unique[(item["path"], content)] = {
                "content": content,
                "path": item["path"],
                "type": "base64",
            }
    return sorted(unique.values(), key=lambda item: item["path"])
