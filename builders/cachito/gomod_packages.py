"""The package records of a gomod request (docs/cachito.md "Package data"), built from what
``go`` reported, as upstream Cachito records them:

- one ``gomod`` package per module, whose dependencies are the modules it needs (type
  ``gomod``; a module replaced to another module is recorded under the replacement's name and
  version, one replaced to a local directory under its own name with the path as version);
- one ``go-package`` package per package of the module (``go list -deps ./...``), less those
  another of its packages already imports, whose dependencies are every package it imports,
  directly or not (type ``go-package``; the standard library without a version);
- purls in Cachito's form (cachito-behaviour.md §9) and canonical ones (packageurl-python); a
  local replacement's purl is its parent module's with ``#<relative path>``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
from pathlib import Path
from typing import Any

from packageurl import PackageURL

from builders.cachito.errors import InvalidRequestData, UnsupportedFeature, ValidationError
from chalicelib.cachito_purl import golang_purl

Record = dict[str, Any]


@dataclasses.dataclass
class ResolvedModule:
    """What ``go`` said about one requested module."""

    subpath: str  # its directory in the repository, "." for the root
    name: str  # the module path
    version: str  # builders/cachito/gomod_version.py
    module_dir: Path
    modules: list[Record]  # from go mod download -json, or vendor/modules.txt
    all_packages: list[Record]  # go list -deps -json all
    packages: list[Record]  # go list -deps -json ./...
    graph: list[tuple[str, str]]  # go mod graph: (module@version, required module@version)
    replaced: set[str]  # the modules the request's dependency_replacements replaced


def load_json_stream(text: str) -> list[Record]:
    """The JSON objects ``go ... -json`` prints one after another."""
    decoder, objects, index = json.JSONDecoder(), [], 0
    text = text.strip()
    while index < len(text):
        value, index = decoder.raw_decode(text, index)
        objects.append(value)
        while index < len(text) and text[index].isspace():
            index += 1
    return objects


def name_and_version(module: Record) -> tuple[str, str]:
    """How upstream names a module that may be replaced: by its replacement when that is a
    module, by itself with the directory as version when that is a local path."""
    replace = module.get("Replace")
    if not replace:
        return module["Path"], module.get("Version") or ""
    if replace.get("Version"):
        return replace["Path"], replace["Version"]
    return module["Path"], replace["Path"]


def is_local(version: str | None) -> bool:
    return bool(version) and (str(version).startswith(".") or str(version).startswith("/"))


def contains_package(parent: str, package: str) -> bool:
    return package == parent or package.startswith(parent + "/")


def match_parent_module(package: str, modules: list[str]) -> str | None:
    """The longest module name that contains ``package``."""
    return max((m for m in modules if contains_package(m, package)), key=len, default=None)


def vet_local_path(version: str, module_dir: Path, repository: Path) -> None:
    """A local replacement must be a relative directory inside the repository."""
    if version.startswith("/") or (len(version) > 2 and version[1] == ":"):
        raise UnsupportedFeature(
            f"Absolute paths to gomod dependencies are not supported: {version}"
        )
    if version.startswith(".") and not (module_dir / version).resolve().is_relative_to(
        repository.resolve()
    ):
        raise ValidationError(f"The local file dependency path {version} is outside the repository")


def canonical_purl(name: str, version: str | None = None, subpath: str | None = None) -> str:
    namespace, _, base = name.rpartition("/")
    return PackageURL(
        type="golang", namespace=namespace or None, name=base, version=version, subpath=subpath
    ).to_string()


def _module_records(resolved: ResolvedModule) -> tuple[list[Record], dict[str, Record]]:
    """The module's dependency records, and each by the module path go's graph knows it by."""
    seen: dict[tuple[str, str], Record] = {}
    by_path: dict[str, Record] = {}
    for module in _listed_modules(resolved):
        if module.get("Path") == resolved.name:
            continue
        name, version = name_and_version(module)
        if not version:
            continue
        record = seen.setdefault(
            (name, version),
            {"name": name, "type": "gomod", "version": version, "replaces": None},
        )
        replace = module.get("Replace")
        if replace and replace.get("Version") and module["Path"] in resolved.replaced:
            record["replaces"] = {
                "type": "gomod",
                "name": module["Path"],
                "version": module.get("Version"),
            }
        by_path[module["Path"]] = record
    return [seen[key] for key in sorted(seen)], by_path


def _package_records(resolved: ResolvedModule) -> list[tuple[Record, list[Record]]]:
    """(package, its dependencies) for each top-level package of the module."""
    listing = {p["ImportPath"]: p for p in resolved.packages}
    results: list[tuple[Record, list[Record]]] = []
    imported: set[str] = set()
    for package in reversed(list(listing.values())):
        module = package.get("Module") or {}
        if not module.get("Main") or package["ImportPath"] in imported:
            continue
        dependencies = []
        for dep_name in package.get("Deps") or []:
            imported.add(dep_name)
            dep = listing.get(dep_name, {})
            dep_module = dep.get("Module")
            if dep.get("Standard"):
                version = None
            elif not dep_module or dep_module.get("Main") or dep_module["Path"] == resolved.name:
                version = resolved.version
            else:
                version = name_and_version(dep_module)[1]
                inside = dep_name[len(dep_module["Path"]) :].lstrip("/")
                if is_local(version) and inside:  # the package's own directory
                    version = posixpath.join(version, inside)
            dependencies.append(
                {"name": dep_name, "type": "go-package", "version": version, "replaces": None}
            )
        record = {"name": package["ImportPath"], "type": "go-package", "version": resolved.version}
        results.append((record, dependencies))
    return results


def _listed_modules(resolved: ResolvedModule) -> list[Record]:
    listed = [p["Module"] for p in resolved.all_packages if p.get("Module")]
    return [m for m in [*listed, *resolved.modules] if not m.get("Main")]


def package_records(
    resolved_modules: list[ResolvedModule],
    bundled: dict[tuple[str, str], tuple[str, str]],
    repository: Path,
) -> list[Record]:
    """Every package record of the request; ``bundled`` maps (module, version) to the sha256
    and bundle path of its zip."""
    top = {r.name: r for r in resolved_modules}
    purls = {r.name: golang_purl(r.name, r.version) for r in resolved_modules}
    records: list[Record] = []
    for resolved in resolved_modules:
        module_deps, by_path = _module_records(resolved)
        for dep in module_deps:
            if is_local(dep["version"]):
                vet_local_path(dep["version"], resolved.module_dir, repository)
            dep["purl"], dep["canonical_purl"] = _local_or_plain(dep, resolved.name, top, purls)
            dep["sha256"], dep["bundle_path"] = bundled.get(
                (dep["name"], dep["version"]), (None, None)
            )
        _set_module_requires(resolved, by_path)
        records.append(_top_record(resolved, resolved.name, "gomod", module_deps))
        package_canonical: dict[str, str] = {}
        packages = _package_records(resolved)
        for _, deps in packages:
            for dep in deps:
                if is_local(dep["version"]):
                    vet_local_path(dep["version"], resolved.module_dir, repository)
                dep["purl"], dep["canonical_purl"] = _local_or_plain(dep, resolved.name, top, purls)
                dep["sha256"] = dep["bundle_path"] = None
                package_canonical[dep["name"]] = dep["canonical_purl"]
        imports = {p["ImportPath"]: p.get("Imports") or [] for p in resolved.packages}
        for package, deps in packages:
            for dep in deps:
                dep["requires"] = sorted(
                    {
                        package_canonical[i]
                        for i in imports.get(dep["name"], [])
                        if i in package_canonical
                    }
                )
            records.append(_top_record(resolved, package["name"], "go-package", deps))
    return records


def _top_record(resolved: ResolvedModule, name: str, kind: str, deps: list[Record]) -> Record:
    record: Record = {"name": name, "type": kind, "version": resolved.version}
    inside = name[len(resolved.name) :].lstrip("/") if kind == "go-package" else ""
    path = posixpath.normpath(posixpath.join(resolved.subpath, inside))
    if path != ".":
        record["path"] = path
    record["purl"] = golang_purl(name, resolved.version)
    record["canonical_purl"] = canonical_purl(name, resolved.version)
    if kind == "go-package":
        record["module"] = resolved.name
    record["dependencies"] = deps
    return record


def _set_module_requires(resolved: ResolvedModule, by_path: dict[str, Record]) -> None:
    """``requires`` of each module dependency: the selected versions of what its go.mod requires
    (``go mod graph``)."""
    edges: dict[str, set[str]] = {}
    for source, target in resolved.graph:
        edges.setdefault(source, set()).add(target.rpartition("@")[0] or target)
    versions = {m["Path"]: m.get("Version") for m in _listed_modules(resolved)}
    for path, record in by_path.items():
        required = edges.get(f"{path}@{versions.get(path)}", set())
        record["requires"] = sorted(
            {by_path[r]["canonical_purl"] for r in required if r in by_path and r != path}
        )


def _local_or_plain(
    dep: Record, module_name: str, top: dict[str, ResolvedModule], purls: dict[str, str]
) -> tuple[str, str]:
    """The (Cachito, canonical) purls of a dependency of ``module_name``'s module."""
    name, version = dep["name"], dep["version"]
    if not is_local(version):
        return golang_purl(name, version), canonical_purl(name, version)
    names = list(top)
    if dep["type"] == "go-package" and (owner := match_parent_module(name, names)):
        # a package of a module in this request takes that module's version
        own_version = top[owner].version
        return golang_purl(name, own_version), canonical_purl(name, own_version)
    normalized = posixpath.normpath(posixpath.join(module_name, version))
    parent = None if dep["type"] == "go-package" else match_parent_module(name, names)
    target = name if parent else normalized
    parent = parent or match_parent_module(normalized, names)
    if parent is None:
        raise InvalidRequestData(
            f"Could not find a Go module in this request containing {name} while processing "
            f"dependency {dict(name=name, type=dep['type'], version=version)} of package "
            f"{module_name}. Please tell Cachito to process the module which contains the "
            f"dependency. Perhaps the parent module of {module_name}?"
        )
    relative = os.path.relpath(target, parent)
    parent_version = top[parent].version
    if relative == ".":
        return purls[parent], canonical_purl(parent, parent_version)
    return f"{purls[parent]}#{relative}", canonical_purl(parent, parent_version, relative)
