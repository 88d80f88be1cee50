"""The yarn (v1) package manager of a Cachito request: ``yarn.lock`` read with pyarn; no yarn
command and no package script runs.

Registry, http(s) and git dependencies go into ``deps/yarn/`` as npm's do
(builders/cachito/js_tarballs.py); ``file:`` and ``link:`` ones stay in the repository. The
offline configuration is ``yarn.lock`` rewritten so each fetched dependency resolves to
``file:<path from the package dir to deps/yarn/….tgz>`` (a git or URL dependency's patterns,
and the package.json specs naming it, become that ``file:`` spec too) and the ``.yarnrc`` of
cachito-behaviour.md §8: ``yarn install --frozen-lockfile --offline`` then installs from the
bundle alone. yarn.lock does not say which dependencies are dev ones: those reachable only
from package.json's ``devDependencies`` are."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pyarn.lockfile

from builders.cachito import errors, js_packages, js_tarballs
from builders.cachito.context import FetchContext, ManagerResult

YARNRC = 'network-timeout "600000"\n'
PROD_FIELDS = ("dependencies", "optionalDependencies")
MANIFEST_FIELDS = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies")


def fetch(ctx: FetchContext, packages: list[dict[str, Any]]) -> ManagerResult:
    """Fetch the yarn dependencies of each package path (default: the repository root)."""
    ctx.step("Fetching the yarn dependencies")
    fetcher = js_tarballs.TarballFetcher(ctx, "yarn")
    result = ManagerResult(environment_variables=dict(js_packages.ENVIRONMENT_VARIABLES))
    counted = 0
    for package in packages or [{"path": "."}]:
        subpath, pkg_dir = js_packages.package_subpath(ctx, package)
        _check_files(ctx, subpath, pkg_dir)
        if len(packages) > 1:
            ctx.step(f'Fetching the yarn dependencies at the "{subpath}" directory')
        record, files = _fetch_package(ctx, fetcher, subpath, pkg_dir, counted)
        counted += len(record["dependencies"])
        result.packages.append(record)
        result.configuration_files.extend(files)
    return result


def _check_files(ctx: FetchContext, subpath: str, pkg_dir: Path) -> None:
    """Upstream Cachito's file checks, in its order and words."""

    def fail(template: str, name: str) -> None:
        relpath = name if subpath == "." else f"{subpath}/{name}"
        raise errors.ValidationError(f"File check failed for yarn: {template.format(relpath)}")

    for name in ("package.json", "yarn.lock"):
        if not (pkg_dir / name).exists():
            fail("the {} file must be present", name)
        if not (pkg_dir / name).is_file():
            fail("{} must be a file", name)
        js_packages.inside_repo(ctx, pkg_dir, name, name)
    for name in ("package-lock.json", "npm-shrinkwrap.json"):
        if (pkg_dir / name).is_file():
            fail("the {} file must not be present", name)
    if (pkg_dir / "node_modules").is_dir():
        fail("the {} directory must not be present", "node_modules")


def _fetch_package(
    ctx: FetchContext,
    fetcher: js_tarballs.TarballFetcher,
    subpath: str,
    pkg_dir: Path,
    counted: int,
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    manifest = js_packages.read_json(pkg_dir / "package.json", "package.json")
    if not isinstance(manifest, dict):
        raise errors.InvalidFileFormat("The package.json file must be an object")
    try:
        lock = pyarn.lockfile.Lockfile.from_str((pkg_dir / "yarn.lock").read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidFileFormat(f"The yarn.lock file cannot be parsed: {exc}") from None
    if "__metadata" in lock.data:
        raise errors.UnsupportedFeature("yarn.lock files of yarn 2 and later are not supported")
    record = js_packages.top_level_package(ctx, "yarn", manifest, subpath)
    nodes, patterns = _nodes(lock.data, manifest, ctx)
    js_packages.fetch_all(nodes, fetcher, pkg_dir, counted)
    record["dependencies"] = js_packages.records(nodes, ctx, pkg_dir, "yarn")
    return record, _configuration(subpath, lock.data, manifest, nodes, patterns)


# -- the lockfile's graph ----------------------------------------------------------------------
def _patterns(key: str) -> list[str]:
    return [pattern.strip() for pattern in key.split(",") if pattern.strip()]


def _node(key: str, entry: dict[str, Any], ctx: FetchContext) -> js_packages.Node:
    try:
        package = pyarn.lockfile.Package.from_dict(key, entry)
    except ValueError as exc:
        raise errors.InvalidFileFormat(f"The yarn.lock entry {key} is invalid: {exc}") from None
    name, version = package.name, str(package.version)
    resolved = entry.get("resolved")
    if package.path is not None and (not resolved or resolved.startswith("file:")):
        return js_packages.Node(key, package.alias or name, "file", version, package.path)
    if not isinstance(resolved, str) or not resolved:
        raise errors.InvalidFileFormat(f"The dependency {name}@{version} has no source")
    integrity = entry.get("integrity")
    if js_tarballs.is_git_spec(resolved):
        return js_packages.Node(key, package.alias or name, "git", version, resolved)
    if js_tarballs.is_url_spec(resolved):
        url, _, fragment = resolved.partition("#")
        integrity = integrity or js_tarballs.sha1_integrity(fragment)
        if js_tarballs.is_registry_url(url, name, version, ctx):
            return js_packages.Node(key, name, "registry", version, "", integrity)
        return js_packages.Node(key, package.alias or name, "url", version, resolved, integrity)
    raise errors.UnsupportedFeature(f"The dependency {name} comes from {resolved}, not supported")


def _nodes(
    data: dict[str, Any], manifest: dict[str, Any], ctx: FetchContext
) -> tuple[dict[str, js_packages.Node], dict[str, str]]:
    """The lockfile's dependencies by entry key, and each pattern's entry key."""
    for key, entry in data.items():
        if not isinstance(entry, dict):
            raise errors.InvalidFileFormat(f"The yarn.lock entry {key} is not a package")
    patterns = {pattern: key for key in data for pattern in _patterns(key)}
    nodes = {key: _node(key, entry, ctx) for key, entry in data.items()}
    for key, node in nodes.items():
        wanted = [f"{n}@{r}" for f in PROD_FIELDS for n, r in (data[key].get(f) or {}).items()]
        node.requires = [patterns[p] for p in wanted if p in patterns]
    # dev: reachable only from devDependencies (with workspaces, yarn.lock cannot tell)
    if "workspaces" not in manifest:
        seen: set[str] = set()
        todo = [f"{n}@{r}" for f in PROD_FIELDS for n, r in (manifest.get(f) or {}).items()]
        todo = [patterns[p] for p in todo if p in patterns]
        while todo:
            key = todo.pop()
            if key not in seen:
                seen.add(key)
                todo.extend(nodes[key].requires)
        for key, node in nodes.items():
            node.dev = key not in seen
    return nodes, patterns


# -- the offline configuration ------------------------------------------------------------------
def _configuration(
    subpath: str,
    data: dict[str, Any],
    manifest: dict[str, Any],
    nodes: dict[str, js_packages.Node],
    patterns: dict[str, str],
) -> list[dict[str, str]]:
    """yarn.lock resolving to the bundle, package.json if a git/URL spec changed, .yarnrc."""
    bundle_pkg = js_packages.app_path(subpath, "").rstrip("/")
    # a git/URL dependency's patterns all become "<name>@file:<tarball>"
    new_spec: dict[str, str] = {}
    for pattern, key in patterns.items():
        node = nodes[key]
        if node.tarball and node.kind in ("url", "git"):
            new_spec[pattern] = js_packages.bundle_relative(node.tarball.bundle_path, bundle_pkg)

    def respec(specs: Any) -> bool:
        changed = False
        if isinstance(specs, dict):
            for name, spec in specs.items():
                if f"{name}@{spec}" in new_spec:
                    specs[name] = new_spec[f"{name}@{spec}"]
                    changed = True
        return changed

    new_data: dict[str, Any] = {}
    for key, entry in data.items():
        node, entry = nodes[key], copy.deepcopy(entry)
        if node.tarball:
            entry["resolved"] = js_packages.bundle_relative(node.tarball.bundle_path, bundle_pkg)
            if node.kind in ("url", "git") or not entry.get("integrity"):
                entry["integrity"] = node.tarball.integrity
        for field in PROD_FIELDS:
            respec(entry.get(field))
        keys = []
        for pattern in _patterns(key):
            if pattern in new_spec:
                pattern = f"{_pattern_name(pattern)}@{new_spec[pattern]}"
            if pattern not in keys:
                keys.append(pattern)
        new_data[", ".join(keys)] = entry
    lockfile = pyarn.lockfile.Lockfile("1", new_data)
    files = [
        js_packages.config_file(js_packages.app_path(subpath, "yarn.lock"), lockfile.to_str()),
        js_packages.config_file(js_packages.app_path(subpath, ".yarnrc"), YARNRC),
    ]
    new_manifest = copy.deepcopy(manifest)
    if any([respec(new_manifest.get(field)) for field in MANIFEST_FIELDS]):
        files.append(
            js_packages.config_file(
                js_packages.app_path(subpath, "package.json"),
                json.dumps(new_manifest, indent=2) + "\n",
            )
        )
    return files


def _pattern_name(pattern: str) -> str:
    """The name of ``name@spec`` (``@scope/name@spec`` too)."""
    at = pattern.find("@", 1)
    return pattern[:at] if at > 0 else pattern
