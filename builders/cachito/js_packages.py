"""What the npm and yarn managers share besides fetching (builders/cachito/js_tarballs.py):
their package and dependency records (purls in Cachito's form and canonical ones), the
dependency graph a lockfile gives (``Node``), paths inside the repository, and the offline
configuration's pieces (environment variables, ``file:`` specs, configuration files)."""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from packageurl import PackageURL

from builders.cachito import errors
from builders.cachito.context import FetchContext
from builders.cachito.js_tarballs import FORGE_SPEC, Tarball, TarballFetcher, git_source
from chalicelib import cachito_purl

#: tarballs fetched at once (downloads wait on the network, not on this host)
FETCH_WORKERS = 8

#: cachito-behaviour.md §8, for npm and yarn alike
ENVIRONMENT_VARIABLES = {
    name: {"value": value, "kind": "literal"}
    for name, value in (
        ("CHROMEDRIVER_SKIP_DOWNLOAD", "true"),
        ("CYPRESS_INSTALL_BINARY", "0"),
        ("GECKODRIVER_SKIP_DOWNLOAD", "true"),
        ("SKIP_SASS_BINARY_DOWNLOAD_FOR_CI", "true"),
    )
}


def inside_repo(ctx: FetchContext, base: Path, relative: str, what: str) -> str:
    """``relative`` (from ``base``) as a path from the repository root; it must stay inside."""
    root = os.path.realpath(ctx.app_dir)
    target = os.path.realpath(os.path.join(base, relative))
    if os.path.commonpath([root, target]) != root:
        raise errors.UnsupportedFeature(f"The {what} ({relative}) is outside of the repository")
    return Path(os.path.relpath(target, root)).as_posix()


# -- records -----------------------------------------------------------------------------------
def canonical(name: str, version: str | None, **extra: Any) -> str:
    namespace, _, short = name.rpartition("/")
    return PackageURL(
        type="npm", namespace=namespace or None, name=short, version=version or None, **extra
    ).to_string()


def top_level_package(
    ctx: FetchContext, manager: str, manifest: dict[str, Any], subpath: str
) -> dict[str, Any]:
    name, version = manifest.get("name"), manifest.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        raise errors.InvalidFileFormat(
            "The package.json file is missing required data (name, version)"
        )
    package: dict[str, Any] = {
        "name": name,
        "type": manager,
        "version": version,
        "purl": cachito_purl.vcs_purl(name, ctx.repo, ctx.ref, subpath),
        "canonical_purl": canonical(
            name,
            version,
            qualifiers={"vcs_url": f"git+{ctx.repo}@{ctx.ref}"},
            subpath=None if subpath == "." else subpath,
        ),
        "dependencies": [],
    }
    if subpath != ".":
        package["path"] = subpath
    return package


def forge_purl(spec: str) -> str | None:
    """``github:ns/name#ref`` → ``pkg:github/ns/name@ref`` (Cachito's form)."""
    match = FORGE_SPEC.match(spec)
    if not match or spec.startswith(("git+", "git://")):
        return None
    namespace, _, repo = match.group("path").partition("/")
    return f"pkg:{match.group('forge') or 'github'}/{namespace}/{repo}@{match.group('ref')}"


def config_file(path: str, content: str) -> dict[str, str]:
    return {
        "path": path,
        "content": base64.b64encode(content.encode("utf-8")).decode("ascii"),
        "type": "base64",
    }


def bundle_relative(bundle_path: str, start: str) -> str:
    """``file:`` spec of a bundle path (``deps/…``) seen from ``start`` (a bundle path)."""
    return "file:" + Path(os.path.relpath(bundle_path, start)).as_posix()


def package_subpath(ctx: FetchContext, package: dict[str, Any]) -> tuple[str, Path]:
    """The request's ``path`` normalized (``.`` for the root) and its directory in app/."""
    raw = str(package.get("path") or ".")
    normal = os.path.normpath(raw)
    if os.path.isabs(raw) or normal.split(os.sep)[0] == "..":
        raise errors.ValidationError(
            f'The "path" value {raw} must be to a relative path in the source repository'
        )
    inside_repo(ctx, ctx.app_dir, normal, "package path")
    return Path(normal).as_posix(), ctx.app_dir / normal


def app_path(subpath: str, filename: str) -> str:
    return Path("app", subpath, filename).as_posix() if subpath != "." else f"app/{filename}"


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise errors.InvalidFileFormat(f"The {what} file is not valid JSON: {exc}") from None


def dedupe(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (name, version): dev only if every occurrence is; requires merged."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        key = (record["name"], record["version"])
        if key in merged:
            first = merged[key]
            first["dev"] = first["dev"] and record["dev"]
            first["requires"] = sorted(set(first["requires"]) | set(record["requires"]))
        else:
            merged[key] = {**record, "requires": sorted(set(record["requires"]))}
    return sorted(merged.values(), key=lambda r: (r["name"], r["version"]))


# -- the dependency graph both lockfiles give --------------------------------------------------
@dataclasses.dataclass
class Node:
    """One installed dependency as a lockfile states it."""

    key: str  # its place in the lockfile (npm: node_modules/…; yarn: the entry's patterns)
    name: str  # the package's name (an alias's target when the lockfile says)
    kind: str  # "registry", "url", "git", "file" (in the repository) or "bundled"
    version: str | None  # the semver version, when the lockfile says
    source: str = ""  # url: the URL; git: the spec; file: the path from the package dir
    integrity: str | None = None
    dev: bool = False
    requires: list[str] = dataclasses.field(default_factory=list)  # keys of its direct deps
    tarball: Tarball | None = None

    def fetch(self, fetcher: TarballFetcher) -> None:
        if self.kind == "registry" and self.version:
            self.tarball = fetcher.registry(self.name, self.version, self.integrity)
        elif self.kind == "url":
            self.tarball = fetcher.url(self.name, self.source.partition("#")[0], self.integrity)
        elif self.kind == "git":
            self.tarball = fetcher.git(self.name, self.source)


def fetch_all(
    nodes: dict[str, Node], fetcher: TarballFetcher, pkg_dir: Path, counted: int = 0
) -> None:
    """Check the nodes (the request's dependency limit, with ``counted`` found before; file
    dependencies inside the repository), then fetch every tarball, ``FETCH_WORKERS`` at a
    time; the first failure fails the whole (the others not started are cancelled)."""
    ctx = fetcher.ctx
    count = counted + len({(n.name, n.version, n.kind, n.source) for n in nodes.values()})
    if count > ctx.limits.max_dependencies:
        raise errors.ValidationError(
            f"The {fetcher.manager} packages have {count} dependencies, more than the "
            f"request's limit of {ctx.limits.max_dependencies}"
        )
    for node in nodes.values():
        if node.kind == "file":
            inside_repo(ctx, pkg_dir, node.source, f"file dependency {node.name}")
    wanted = [node for node in nodes.values() if node.kind in ("registry", "url", "git")]
    with concurrent.futures.ThreadPoolExecutor(FETCH_WORKERS) as pool:
        futures = [pool.submit(node.fetch, fetcher) for node in wanted]
        try:
            for done in concurrent.futures.as_completed(futures):
                done.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def node_purls(node: Node, ctx: FetchContext, pkg_dir: Path) -> tuple[str, str, str]:
    """The record's version (Cachito's: the source for non-registry deps), its Cachito purl
    and its canonical purl."""
    name = node.tarball.name if node.tarball else node.name
    version = node.tarball.version if node.tarball else node.version
    if node.kind == "url":
        url = node.source.partition("#")[0]
        sha256 = node.tarball.sha256 if node.tarball else ""
        qualifiers = {"download_url": url, "checksum": f"sha256:{sha256}"}
        # Cachito's purl names the lockfile's URL as it is (yarn's carries a #sha1)
        return (node.source, cachito_purl.download_purl(name, node.source),
                canonical(name, version, qualifiers=qualifiers))  # fmt: skip
    if node.kind == "git":
        source = git_source(node.source)
        purl = forge_purl(node.source) or cachito_purl.git_dependency_purl(name, node.source)
        vcs = f"git+{source.fetch_url}@{source.commit}"
        return node.source, purl, canonical(name, version, qualifiers={"vcs_url": vcs})
    if node.kind == "file":
        in_repo = inside_repo(ctx, pkg_dir, node.source, f"file dependency {name}")
        vcs = f"git+{ctx.repo}@{ctx.ref}"
        return (f"file:{node.source}", cachito_purl.file_purl(name, node.source),
                canonical(name, version, qualifiers={"vcs_url": vcs}, subpath=in_repo))  # fmt: skip
    return str(version), cachito_purl.npm_purl(name, str(version)), canonical(name, version)


def records(
    nodes: dict[str, Node], ctx: FetchContext, pkg_dir: Path, manager: str
) -> list[dict[str, Any]]:
    """The package's dependency records, one per (name, version)."""
    purls = {key: node_purls(node, ctx, pkg_dir) for key, node in nodes.items()}
    found = []
    for key, node in nodes.items():
        version, purl, canonical_purl = purls[key]
        found.append(
            {
                "name": node.tarball.name if node.tarball else node.name,
                "type": manager,
                "version": version,
                "dev": node.dev,
                "replaces": None,
                "purl": purl,
                "canonical_purl": canonical_purl,
                "sha256": node.tarball.sha256 if node.tarball else None,
                "bundle_path": node.tarball.bundle_path if node.tarball else None,
                "requires": [purls[r][2] for r in node.requires if r in purls],
            }
        )
    return dedupe(found)
