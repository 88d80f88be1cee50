"""The npm package manager of a Cachito request: ``npm-shrinkwrap.json`` or
``package-lock.json`` (lockfileVersion 1, 2 or 3) read in Python; no npm command and no
package script runs.

Every registry, http(s) and git dependency's tarball goes into ``deps/npm/`` (through the
dependency cache, its lockfile integrity checked); ``file:`` dependencies stay in the
repository. The offline configuration is the lockfile rewritten so each fetched dependency
resolves to ``file:<path from the package dir to deps/npm/….tgz>`` (and, where a
dependency is declared by git or URL, the package.json spec too): ``npm ci --offline`` then
installs from the bundle alone. A git or URL spec inside the lockfile (a dependency's own
``requires``) becomes a ``file:`` spec relative to that dependency's tarball, where npm
resolves it."""

from __future__ import annotations

import copy
import json
import posixpath
from pathlib import Path
from typing import Any

from builders.cachito import errors, js_packages, js_tarballs
from builders.cachito.context import FetchContext, ManagerResult

LOCKFILES = ("npm-shrinkwrap.json", "package-lock.json")
DEPENDENCY_FIELDS = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies")
#: what an installed package requires (its devDependencies are not installed)
REQUIRE_FIELDS = ("dependencies", "optionalDependencies", "peerDependencies")


def fetch(ctx: FetchContext, packages: list[dict[str, Any]]) -> ManagerResult:
    """Fetch the npm dependencies of each package path (default: the repository root)."""
    ctx.step("Fetching the npm dependencies")
    fetcher = js_tarballs.TarballFetcher(ctx, "npm")
    result = ManagerResult(environment_variables=dict(js_packages.ENVIRONMENT_VARIABLES))
    counted = 0
    for package in packages or [{"path": "."}]:
        subpath, pkg_dir = js_packages.package_subpath(ctx, package)
        lockfile = _check_files(ctx, subpath, pkg_dir)
        if len(packages) > 1:
            ctx.step(f'Fetching the npm dependencies at the "{subpath}" directory')
        record, files = _fetch_package(ctx, fetcher, subpath, pkg_dir, lockfile, counted)
        counted += len(record["dependencies"])
        result.packages.append(record)
        result.configuration_files.extend(files)
    return result


def _in_package(subpath: str, name: str) -> str:
    return name if subpath == "." else f"{subpath}/{name}"


def _check_files(ctx: FetchContext, subpath: str, pkg_dir: Path) -> str:
    """The lockfile's name; upstream Cachito's refusals, in its order."""
    for name in LOCKFILES:
        if (pkg_dir / name).is_file():
            lockfile = name
            break
    else:
        wanted = " or ".join(_in_package(subpath, name) for name in LOCKFILES)
        raise errors.InvalidRepoStructure(
            f"The {wanted} file must be present for the npm package manager"
        )
    if not (pkg_dir / "package.json").is_file():
        raise errors.InvalidRepoStructure(
            f"The {_in_package(subpath, 'package.json')} file must be present for the npm "
            "package manager"
        )
    if (pkg_dir / "node_modules").exists():
        raise errors.InvalidRepoStructure(
            f"The {_in_package(subpath, 'node_modules')} directory cannot be present in the "
            "source repository"
        )
    for name in (lockfile, "package.json"):
        js_packages.inside_repo(ctx, pkg_dir, name, name)
    return lockfile


def _fetch_package(
    ctx: FetchContext,
    fetcher: js_tarballs.TarballFetcher,
    subpath: str,
    pkg_dir: Path,
    lockfile: str,
    counted: int,
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    lock = js_packages.read_json(pkg_dir / lockfile, lockfile)
    manifest = js_packages.read_json(pkg_dir / "package.json", _in_package(subpath, "package.json"))
    if not isinstance(lock, dict) or not isinstance(manifest, dict):
        raise errors.InvalidFileFormat(f"The {lockfile} and package.json files must be objects")
    version = lock.get("lockfileVersion")
    if version not in (1, 2, 3):
        raise errors.UnsupportedFeature(
            f"The {lockfile} file has lockfileVersion {version!r}; versions 1, 2 and 3 are "
            "supported"
        )
    record = js_packages.top_level_package(ctx, "npm", manifest, subpath)
    try:
        nodes = _nodes_v1(lock, ctx) if version == 1 else _nodes_v2(lock, ctx)
    except (KeyError, TypeError, AttributeError) as exc:
        raise errors.InvalidFileFormat(
            f"The lock file {lockfile} has an unexpected format: {exc!r}"
        ) from None
    js_packages.fetch_all(nodes, fetcher, pkg_dir, counted)
    record["dependencies"] = js_packages.records(nodes, ctx, pkg_dir, "npm")
    return record, _configuration(ctx, subpath, pkg_dir, lockfile, lock, manifest, nodes)


# -- the lockfile's graph ----------------------------------------------------------------------
def _installed(key: str) -> bool:
    return key.startswith("node_modules/") or "/node_modules/" in key


def _resolve(keys: dict[str, Any], from_key: str, name: str) -> str | None:
    """Where Node.js finds ``name`` required from ``from_key`` (a lockfile location)."""
    parts = from_key.split("/") if from_key else []
    for end in range(len(parts), -1, -1):
        if end and parts[end - 1] == "node_modules":
            continue
        prefix = "/".join(parts[:end])
        candidate = f"{prefix}/node_modules/{name}" if prefix else f"node_modules/{name}"
        if candidate in keys:
            return candidate
    return None


def _classify(
    key: str, name: str, version: str | None, resolved: str | None, ctx: FetchContext
) -> tuple[str, str]:
    """(kind, source) of a dependency from its lockfile version and resolved values."""
    if resolved is None:
        if not version:
            raise errors.InvalidFileFormat(f"The dependency {key} has no version or location")
        return "registry", ""
    if resolved.startswith("file:"):
        return "file", resolved.removeprefix("file:")
    if js_tarballs.is_git_spec(resolved):
        return "git", resolved
    if js_tarballs.is_url_spec(resolved):
        if version and js_tarballs.is_registry_url(resolved, name, version, ctx):
            return "registry", ""
        return "url", resolved
    raise errors.UnsupportedFeature(f"The dependency {name} comes from {resolved}, not supported")


def _nodes_v2(lock: dict[str, Any], ctx: FetchContext) -> dict[str, js_packages.Node]:
    packages: dict[str, Any] = lock.get("packages") or {}
    nodes: dict[str, js_packages.Node] = {}
    for key, entry in packages.items():
        if not _installed(key):
            continue  # the package itself, or a workspace / file: directory it links to
        name = entry.get("name") or key.rsplit("node_modules/", 1)[1]
        dev = bool(entry.get("dev"))  # not "devOptional": production installs those too
        version = entry.get("version")
        requires_from, requires_entry = key, entry
        if entry.get("link"):
            target = entry["resolved"]
            requires_from, requires_entry = target, packages.get(target) or {}
            node = js_packages.Node(
                key, name, "file", requires_entry.get("version"), target, dev=dev
            )
        elif entry.get("inBundle"):
            node = js_packages.Node(key, name, "bundled", version, dev=dev)
        else:
            kind, source = _classify(key, name, version, entry.get("resolved"), ctx)
            node = js_packages.Node(key, name, kind, version, source, entry.get("integrity"), dev)
        names = [n for field in REQUIRE_FIELDS for n in requires_entry.get(field) or {}]
        node.requires = [r for n in names if (r := _resolve(packages, requires_from, n))]
        nodes[key] = node
    return nodes


def _nodes_v1(lock: dict[str, Any], ctx: FetchContext) -> dict[str, js_packages.Node]:
    nodes: dict[str, js_packages.Node] = {}
    wanted: dict[str, list[str]] = {}

    def walk(dependencies: dict[str, Any], prefix: str) -> None:
        for name, entry in dependencies.items():
            key = f"{prefix}node_modules/{name}"
            version, dev = str(entry["version"]), bool(entry.get("dev"))
            if entry.get("bundled"):
                node = js_packages.Node(key, name, "bundled", version, dev=dev)
            elif version.startswith("file:"):
                node = js_packages.Node(
                    key, name, "file", None, version.removeprefix("file:"), dev=dev
                )
            elif js_tarballs.is_git_spec(version) or js_tarballs.is_url_spec(version):
                kind = "git" if js_tarballs.is_git_spec(version) else "url"
                node = js_packages.Node(key, name, kind, None, version, entry.get("integrity"), dev)
            else:
                if version.startswith("npm:"):  # an alias: npm:<name>@<version>
                    name, _, version = version.removeprefix("npm:").rpartition("@")
                kind, source = _classify(key, name, version, entry.get("resolved"), ctx)
                node = js_packages.Node(
                    key, name, kind, version, source, entry.get("integrity"), dev
                )
            nodes[key] = node
            requires = entry.get("requires")
            wanted[key] = list(requires) if isinstance(requires, dict) else []
            walk(entry.get("dependencies") or {}, key + "/")

    walk(lock.get("dependencies") or {}, "")
    for key, names in wanted.items():
        nodes[key].requires = [r for n in names if (r := _resolve(nodes, key, n))]
    return nodes


# -- the offline configuration -----------------------------------------------------------------
def _remote_spec(spec: Any) -> bool:
    """A spec npm fetches from a URL or git (not the registry, not a path)."""
    return isinstance(spec, str) and (
        js_tarballs.is_url_spec(spec)
        or js_tarballs.is_git_spec(spec)
        or spec.startswith(("github:", "gitlab:", "bitbucket:", "gist:"))
        or (spec.count("/") == 1 and ":" not in spec and not spec.startswith((".", "@", "/")))
    )


def _rewrite_specs(
    fields: dict[str, Any], from_key: str, start: str, nodes: dict[str, js_packages.Node]
) -> bool:
    """Point git/URL specs in ``fields`` (a package's dependency maps) at the bundled
    tarballs, as ``file:`` specs relative to ``start`` (a bundle path)."""
    changed = False
    for field in DEPENDENCY_FIELDS:
        specs = fields.get(field)
        if not isinstance(specs, dict):
            continue
        for name, spec in specs.items():
            target = _resolve(nodes, from_key, name)
            tarball = nodes[target].tarball if target else None
            if tarball and _remote_spec(spec):
                specs[name] = js_packages.bundle_relative(tarball.bundle_path, start)
                changed = True
    return changed


def _requester_dir(key: str, nodes: dict[str, js_packages.Node], bundle_pkg: str) -> str:
    """Where npm resolves a ``file:`` spec of ``key`` from: its tarball's directory, or the
    local package's own directory."""
    tarball = nodes[key].tarball if key in nodes else None
    if tarball:
        return posixpath.dirname(tarball.bundle_path)
    return posixpath.join(bundle_pkg, key) if key else bundle_pkg


def _rewrite_entry(
    entry: dict[str, Any], tarball: js_tarballs.Tarball, kind: str, bundle_pkg: str
) -> None:
    """A lockfile entry (either format) resolving to its bundled tarball. A git/URL one takes
    the tarball's own version (npm checks it) and the bundled file's integrity."""
    entry["resolved"] = js_packages.bundle_relative(tarball.bundle_path, bundle_pkg)
    if kind in ("url", "git"):
        entry.pop("from", None)
        entry["version"] = tarball.version
        entry["integrity"] = tarball.integrity
    entry.setdefault("integrity", tarball.integrity)


def _configuration(
    ctx: FetchContext,
    subpath: str,
    pkg_dir: Path,
    lockfile: str,
    lock: dict[str, Any],
    manifest: dict[str, Any],
    nodes: dict[str, js_packages.Node],
) -> list[dict[str, str]]:
    """The rewritten lockfile, and each local package.json whose git/URL specs changed."""
    bundle_pkg = js_packages.app_path(subpath, "").rstrip("/")
    new_lock = copy.deepcopy(lock)
    manifests: dict[str, dict[str, Any]] = {"": copy.deepcopy(manifest)}
    packages = new_lock.get("packages")
    if isinstance(packages, dict):
        for key, entry in packages.items():
            node = nodes.get(key)
            if node and node.tarball:
                _rewrite_entry(entry, node.tarball, node.kind, bundle_pkg)
            if not _installed(key) or node:
                _rewrite_specs(entry, key, _requester_dir(key, nodes, bundle_pkg), nodes)
            if key and not _installed(key):  # a workspace or file: directory package
                local = pkg_dir / key / "package.json"
                js_packages.inside_repo(ctx, pkg_dir, f"{key}/package.json", f"package {key}")
                if local.is_file():
                    manifests[key] = js_packages.read_json(local, f"{key}/package.json")

    def walk_v1(dependencies: dict[str, Any], prefix: str) -> None:
        for name, entry in dependencies.items():
            key = f"{prefix}node_modules/{name}"
            node = nodes.get(key)
            if node and node.tarball:
                _rewrite_entry(entry, node.tarball, node.kind, bundle_pkg)
            if isinstance(entry.get("requires"), dict):
                start = _requester_dir(key, nodes, bundle_pkg)
                _rewrite_specs({"dependencies": entry["requires"]}, key, start, nodes)
            walk_v1(entry.get("dependencies") or {}, key + "/")

    walk_v1(new_lock.get("dependencies") or {}, "")
    files = [
        js_packages.config_file(
            js_packages.app_path(subpath, lockfile), json.dumps(new_lock, indent=2) + "\n"
        )
    ]
    for key, local_manifest in manifests.items():
        start = _requester_dir(key, nodes, bundle_pkg)
        if isinstance(local_manifest, dict) and _rewrite_specs(local_manifest, key, start, nodes):
            path = js_packages.app_path(
                subpath, posixpath.join(key, "package.json") if key else "package.json"
            )
            files.append(js_packages.config_file(path, json.dumps(local_manifest, indent=2) + "\n"))
    return files
