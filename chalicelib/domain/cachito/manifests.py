"""Image content manifests (ICM) of Cachito requests, exactly as upstream Cachito builds them
(cachito-behaviour.md §9), from the package data a build host uploads (packages.json: each
package and dependency carries its Cachito-form ``purl``).

One entry per npm, pip, yarn and rubygems package, per Go *package* and per git submodule; Go
modules get none of their own but give their module dependencies to the entries of their
packages as ``sources``. Every list is sorted by purl, recursively, a purl listed twice given
once. The caller serializes with ``json.dumps(..., sort_keys=True)``, which puts the keys in
order."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

ICM_VERSION = 1
ICM_SPEC = (
    "https://raw.githubusercontent.com/containerbuildsystem/atomic-reactor/"
    "f4abcfdaf8247a6b074f94fa84f3846f82d781c6/atomic_reactor/schemas/content_manifest.json"
)
UNKNOWN_LAYER_INDEX = -1

#: package types whose entry lists their dependencies themselves (npm/pip/yarn: the non-dev
#: ones as ``dependencies``; rubygems has no dev dependencies)
_STANDARD_TYPES = frozenset({"npm", "pip", "yarn", "rubygems"})

Entry = dict[str, Any]


def request_content_manifest(packages: list[dict[str, Any]]) -> dict[str, Any]:
    """The content manifest of one request from its package records (``[]`` for a request
    whose packages are gone, e.g. a stale one: the manifest then has no contents). Keys are
    sorted by the caller's ``json.dumps(sort_keys=True)``."""
    return _document(_merged(_entries(packages)))


def content_manifest(package_lists: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """The content manifest of several requests (``/content-manifest?requests=``): their
    entries together, an entry two requests both have (the same purl) given once with the
    union of its dependencies and sources, and everything sorted again. No requests give the
    empty document. Keys are sorted by the caller's ``json.dumps(sort_keys=True)``."""
    entries = [entry for packages in package_lists for entry in _entries(packages)]
    return _document(_merged(entries))


def _document(image_contents: list[Entry]) -> dict[str, Any]:
    return {
        "metadata": {
            "icm_version": ICM_VERSION,
            "icm_spec": ICM_SPEC,
            "image_layer_index": UNKNOWN_LAYER_INDEX,
        },
        "image_contents": image_contents,
    }


def _entries(packages: list[dict[str, Any]]) -> list[Entry]:
    """The unsorted entries of one request, in package order."""
    module_sources: dict[str, list[str]] = {}
    for package in packages:
        if package["type"] == "gomod":
            module_sources.setdefault(package["name"], []).extend(
                dependency["purl"] for dependency in package.get("dependencies", [])
            )
    entries: list[Entry] = []
    for package in packages:
        kind = package["type"]
        dependencies = package.get("dependencies", [])
        if kind in _STANDARD_TYPES:
            runtime = [d["purl"] for d in dependencies if not d.get("dev", False)]
            entries.append(_entry(package["purl"], runtime, [d["purl"] for d in dependencies]))
        elif kind == "go-package":
            module = _parent_module(package, module_sources)
            sources = module_sources[module] if module is not None else []
            entries.append(_entry(package["purl"], [d["purl"] for d in dependencies], sources))
        elif kind == "git-submodule":
            entries.append(_entry(package["purl"], [], []))
    return entries


def _parent_module(package: dict[str, Any], module_sources: dict[str, list[str]]) -> str | None:
    """The gomod package a go-package belongs to: the one its ``module`` names, else (as
    Cachito does) the longest module name the package's name is inside of."""
    if package.get("module") in module_sources:
        return str(package["module"])
    name = package["name"]
    inside = [m for m in module_sources if name == m or name.startswith(f"{m}/")]
    return max(inside, key=len) if inside else None


def _entry(purl: str, dependencies: Iterable[str], sources: Iterable[str]) -> Entry:
    return {"purl": purl, "dependencies": _purl_list(dependencies), "sources": _purl_list(sources)}


def _purl_list(purls: Iterable[str]) -> list[dict[str, str]]:
    return [{"purl": purl} for purl in sorted(set(purls))]


def _merged(entries: list[Entry]) -> list[Entry]:
    """Entries with the same purl as one, with the union of their lists; sorted by purl."""
    by_purl: dict[str, Entry] = {}
    for entry in entries:
        seen = by_purl.get(entry["purl"])
        if seen is None:
            by_purl[entry["purl"]] = entry
            continue
        by_purl[entry["purl"]] = _entry(
            entry["purl"],
            [item["purl"] for item in seen["dependencies"] + entry["dependencies"]],
            [item["purl"] for item in seen["sources"] + entry["sources"]],
        )
    return [by_purl[purl] for purl in sorted(by_purl)]
