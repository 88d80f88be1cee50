"""The pip package manager of a Cachito request: sdists from the package index, URL and git
dependencies, every file through the shared dependency cache, and the offline configuration
that lets ``pip install -r requirements.txt`` build from the bundle with no network.

Bundle (cachito-behaviour.md §7)::

    deps/pip/<name>/<sdist>                                          from the index
    deps/pip/external-<name>/<name>-external-<alg>-<digest>.<ext>    URL dependencies
    deps/pip/<host>/<ns>/<repo>/<repo>-external-gitcommit-<sha>.tar.gz  git dependencies
    deps/pip/index.html                                              links to every sdist

Offline configuration (Kiln's, no credentials): ``PIP_FIND_LINKS=deps/pip/index.html``
(path: pip reads the links of a local HTML file; a directory it would not search
recursively), ``PIP_NO_INDEX=true`` (literal), and, when a requirements file has URL or git
lines, ``KILN_PIP_DEPS_DIR=deps/pip`` (path) with that file rewritten (a configuration file)
so those lines read ``name @ file://${KILN_PIP_DEPS_DIR}/...#sha256=<hex>``, which pip expands.

Nothing of a package is run: names and versions come from the index's file names and from
static reads of the project's metadata (builders/cachito/pip_metadata.py)."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from packageurl import PackageURL
from packaging.utils import canonicalize_name, canonicalize_version

from builders.cachito import pip_git
from builders.cachito.context import FetchContext, ManagerResult
from builders.cachito.errors import (
    FileAccessError,
    InvalidRequestData,
    NetworkError,
    ValidationError,
)
from builders.cachito.pip_index import PackageIndex, check_sdist_metadata, write_capped
from builders.cachito.pip_metadata import package_metadata
from builders.cachito.pip_requirements import (
    DEPS_DIR_VARIABLE,
    Requirement,
    RequirementsFile,
    bundle_line,
    check_hashes,
    read_requirements_file,
    rewrite_requirements,
)
from chalicelib import cachito_purl
from chalicelib.adapters import web_fetch

DEFAULT_INDEX_URL = "https://pypi.org"
DEFAULT_REQUIREMENTS_FILE = "requirements.txt"
DEFAULT_BUILD_REQUIREMENTS_FILE = "requirements-build.txt"
FIND_LINKS_FILE = "index.html"


def fetch(ctx: FetchContext, packages: list[dict[str, Any]]) -> ManagerResult:
    ctx.step("Fetching the pip dependencies")
    fetcher = _PipFetcher(ctx)
    result = ManagerResult()
    try:
        for entry in packages or [{"path": "."}]:
            ctx.check_interrupted()
            result.packages.append(fetcher.package(entry))
    finally:
        shutil.rmtree(fetcher.scratch, ignore_errors=True)
    fetcher.write_find_links_index()
    result.environment_variables = {
        "PIP_FIND_LINKS": {"value": f"deps/pip/{FIND_LINKS_FILE}", "kind": "path"},
        "PIP_NO_INDEX": {"value": "true", "kind": "literal"},
    }
    if fetcher.configuration_files:
        result.environment_variables[DEPS_DIR_VARIABLE] = {"value": "deps/pip", "kind": "path"}
    result.configuration_files = sorted(
        fetcher.configuration_files.values(), key=lambda f: f["path"]
    )
    return result


class _PipFetcher:
    def __init__(self, ctx: FetchContext) -> None:
        self.ctx = ctx
        self.pip_dir = ctx.deps_dir / "pip"
        self.pip_dir.mkdir(parents=True, exist_ok=True)
        self.index = PackageIndex(str(ctx.options.get("pip_index_url") or DEFAULT_INDEX_URL))
        self.allow = web_fetch.AllowList.parse(str(ctx.options.get("allow_cidrs") or ""))
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix="pip-", dir=ctx.work_dir))
        self.bundled: dict[str, str] = {}  # path under deps/pip -> sha256
        self.sdists: dict[str, str] = {}  # index sdists: path under deps/pip -> sha256
        self.resolved: dict[str, dict[str, Any]] = {}  # index answers, by identity
        self.bundled_bytes = 0
        self.configuration_files: dict[str, dict[str, str]] = {}

    # -- packages ---------------------------------------------------------------------------
    def package(self, entry: dict[str, Any]) -> dict[str, Any]:
        subpath = self._relative(str(entry.get("path") or "."), "package path")
        package_dir = self._inside_app(subpath)
        if not package_dir.is_dir():
            raise InvalidRequestData(
                f"The pip package path {subpath} is not a directory in the repository"
            )
        name, version = package_metadata(package_dir, self.ctx.repo, subpath, self.ctx.log)
        parsed = [
            (dev, read_requirements_file(path, shown))
            for dev, key, default in (
                (False, "requirements_files", DEFAULT_REQUIREMENTS_FILE),
                (True, "requirements_build_files", DEFAULT_BUILD_REQUIREMENTS_FILE),
            )
            for path, shown in self._requirements_files(
                package_dir, subpath, entry.get(key), default
            )
        ]
        dependencies: list[dict[str, Any]] = []
        for dev, requirements_file in parsed:
            if requirements_file.ignored_options:
                self.ctx.log(
                    f"I: pip: {requirements_file.shown}: Cachito will ignore the following "
                    f"options: {', '.join(requirements_file.ignored_options)}"
                )
            dependencies.extend(self._fetch_file(requirements_file, dev))
        record: dict[str, Any] = {
            "name": name,
            "type": "pip",
            "version": version,
            "purl": cachito_purl.vcs_purl(name, self.ctx.repo, self.ctx.ref, subpath),
            "canonical_purl": PackageURL(
                type="pypi",
                name=name,
                version=version,
                qualifiers={"vcs_url": f"git+{self.ctx.repo}@{self.ctx.ref}"},
                subpath=None if subpath == "." else subpath,
            ).to_string(),
            "dependencies": dependencies,
        }
        if subpath != ".":
            record["path"] = subpath
        return record

    def _relative(self, path: str, what: str) -> str:
        pure = PurePosixPath(path)
        if pure.is_absolute() or ".." in pure.parts:
            raise ValidationError(
                f"The pip {what} {path!r} must be a relative path in the source repository"
            )
        return str(pure)

    def _inside_app(self, relative: str) -> Path:
        root = self.ctx.app_dir.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root):
            raise ValidationError(f"The path {relative} leads outside of the source repository")
        return path

    def _requirements_files(
        self, package_dir: Path, subpath: str, given: Any, default: str
    ) -> list[tuple[Path, str]]:
        """(path, path in the repository) of each requirements file: the given ones, which must
        exist, or the default one when present."""
        if given is None:
            path = package_dir / default
            return [(path, str(PurePosixPath(subpath) / default))] if path.is_file() else []
        found = []
        for name in given:
            shown = str(PurePosixPath(subpath) / self._relative(str(name), "requirements file"))
            path = self._inside_app(shown)
            if not path.is_file():
                raise FileAccessError(f"Following requirement file has an invalid path: {shown}")
            found.append((path, shown))
        return found

    # -- dependencies -----------------------------------------------------------------------
    def _fetch_file(self, requirements_file: RequirementsFile, dev: bool) -> list[dict[str, Any]]:
        dependencies = []
        replacements: dict[int, str] = {}
        for req in requirements_file.requirements:
            self.ctx.check_interrupted()
            self.ctx.log(f"I: pip: {requirements_file.shown}: {req.download_line}")
            if req.kind == "pypi":
                dependency = self._pypi(req)
            elif req.kind == "url":
                dependency = self._url(req)
            else:
                dependency = self._vcs(req)
            dependency["dev"] = dev
            if req.kind in ("url", "vcs"):
                relative = dependency["bundle_path"].removeprefix("deps/pip/")
                replacements[req.line_number] = bundle_line(req, relative, dependency["sha256"])
            dependencies.append(dependency)
        if replacements:
            text = requirements_file.path.read_text(encoding="utf-8")
            content = rewrite_requirements(text, replacements).encode("utf-8")
            path = f"app/{requirements_file.shown}"
            self.configuration_files[path] = {
                "path": path,
                "content": base64.b64encode(content).decode("ascii"),
                "type": "base64",
            }
        return dependencies

    def _pypi(self, req: Requirement) -> dict[str, Any]:
        assert req.version is not None
        sdist = self._resolve_sdist(req.name, req.version)
        filename = sdist["filename"]
        relative = f"{sdist['name']}/{filename}"
        sha256 = self._bundle(
            f"pypi:{sdist['name']}=={sdist['version']}:{filename}",
            relative,
            lambda target: self.index.download(
                sdist["url"], target, self._budget(), self._too_big(sdist["url"])
            ),
            sha256=sdist.get("sha256"),
        )
        target = self.pip_dir / relative
        if req.hashes:
            check_hashes(target, req.hashes, filename)
        check_sdist_metadata(target)
        self.sdists[relative] = sha256
        qualifiers = None
        if self.index.base_url != DEFAULT_INDEX_URL:
            qualifiers = {"repository_url": f"{self.index.base_url}/simple"}
        name, version = sdist["name"], sdist["version"]
        return _dependency(
            name,
            version,
            cachito_purl.pypi_purl(name, version),
            PackageURL(
                type="pypi", name=canonicalize_name(name), version=version, qualifiers=qualifiers
            ),
            sha256,
            relative,
        )

    def _url(self, req: Requirement) -> dict[str, Any]:
        assert req.url is not None
        url = urllib.parse.urldefrag(req.url)[0]
        self._guard(url, req)
        algorithm, _, digest = req.url_hash.partition(":")
        relative = req.url_bundle_path
        filename = PurePosixPath(relative).name

        def download(target: Path) -> None:
            self._web_download(url, target, req)
            check_hashes(target, [req.url_hash], filename)

        sha256 = self._bundle(
            f"url:{url}#{req.url_hash}",
            relative,
            download,
            sha256=digest.lower() if algorithm == "sha256" else None,
            verify=lambda target: check_hashes(target, [req.url_hash], filename),
        )
        version = req.url_with_hash
        purl = (
            cachito_purl.download_purl(req.package.lower(), version) + f"&checksum={req.url_hash}"
        )
        canonical = PackageURL(
            type="pypi",
            name=canonicalize_name(req.name),
            qualifiers={"download_url": url, "checksum": req.url_hash},
        )
        return _dependency(req.package, version, purl, canonical, sha256, relative)

    def _vcs(self, req: Requirement) -> dict[str, Any]:
        info = req.git_info()
        self._guard(info.url, req)
        relative = info.bundle_path
        sha256 = self._bundle(
            f"git:{info.url}@{info.ref}",
            relative,
            lambda target: pip_git.archive_commit(
                info.url,
                info.ref,
                target,
                self.scratch,
                self._budget(),
                self._too_big(info.url),
                self.ctx.limits.max_source_bytes,
                self.allow,
            ),
        )
        version = f"git+{info.url}@{info.ref}"
        canonical = PackageURL(
            type="pypi", name=canonicalize_name(req.name), qualifiers={"vcs_url": version}
        )
        purl = cachito_purl.vcs_purl(req.package, info.url, info.ref)
        return _dependency(req.package, version, purl, canonical, sha256, relative)

    # -- files ------------------------------------------------------------------------------
    def _budget(self) -> int:
        return self.ctx.limits.max_bytes - self.bundled_bytes

    def _bundle(
        self,
        identity: str,
        relative: str,
        download: Callable[[Path], None],
        sha256: str | None = None,
        verify: Callable[[Path], None] | None = None,
    ) -> str:
        """Put the file at deps/pip/<relative> through the dependency cache (once per request);
        its sha256."""
        if relative in self.bundled:
            return self.bundled[relative]
        limit = self.ctx.limits.max_dependencies
        if len(self.bundled) >= limit:
            raise ValidationError(
                f"The pip dependencies exceed the limit of {limit} dependencies per request"
            )
        target = self.pip_dir / relative
        if not target.resolve().is_relative_to(self.pip_dir.resolve()):
            raise ValidationError(f"The dependency file {relative} would be outside of deps/pip")
        digest = self.ctx.cache.fetch(
            "pip", identity, target, download, sha256=sha256, verify=verify
        )
        self.bundled_bytes += target.stat().st_size
        if self.bundled_bytes > self.ctx.limits.max_bytes:
            raise ValidationError(self._too_big(relative))
        self.bundled[relative] = digest
        return digest

    def _guard(self, url: str, req: Requirement) -> None:
        try:
            web_fetch.check_url(url, self.allow)
        except web_fetch.FetchRefused as exc:
            raise ValidationError(f"Refusing to fetch {req.download_line}: {exc}") from None

    def _too_big(self, url: str) -> str:
        limit = self.ctx.limits.max_bytes
        return f"The pip dependencies exceed the limit of {limit} bytes per request ({url})"

    def _web_download(self, url: str, target: Path, req: Requirement) -> None:
        """A user-given URL, through the address guard (each redirect checked too)."""
        try:
            with web_fetch.open_url(url, self.allow, timeout=120) as download:
                write_capped(download.chunks(), target, self._budget(), self._too_big(url))
        except web_fetch.FetchRefused as exc:
            raise ValidationError(f"Refusing to fetch {req.download_line}: {exc}") from None
        except web_fetch.FetchFailed as exc:
            raise NetworkError(f"Failed to download {url}: {exc}") from None

    def _resolve_sdist(self, name: str, version: str) -> dict[str, Any]:
        """The index's sdist of name==version (see PackageIndex.find_sdist). The answer is kept
        in the dependency cache too, so a later request for a pinned version already fetched
        asks the index nothing."""
        canonical = canonicalize_name(name)
        base = self.index.base_url
        identity = f"pypi-sdist:{base}:{canonical}=={canonicalize_version(version)}"
        if identity in self.resolved:
            return self.resolved[identity]
        target = self.scratch / f"sdist-{hashlib.sha256(identity.encode()).hexdigest()}.json"

        def query(path: Path) -> None:
            path.write_text(json.dumps(self.index.find_sdist(name, version), sort_keys=True))

        def verify(path: Path) -> None:
            found = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(found, dict) or not found.get("filename") or not found.get("url"):
                raise ValueError("not an sdist record")

        self.ctx.cache.fetch("pip", identity, target, query, verify=verify)
        found: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
        self.resolved[identity] = found
        return found

    # -- offline configuration --------------------------------------------------------------
    def write_find_links_index(self) -> None:
        """deps/pip/index.html: a relative link to every sdist, with its sha256."""
        links = "".join(
            f'<a href="{html.escape(urllib.parse.quote(relative))}#sha256={sha256}">'
            f"{html.escape(PurePosixPath(relative).name)}</a><br/>\n"
            for relative, sha256 in sorted(self.sdists.items())
        )
        page = (
            "<!DOCTYPE html>\n<html><head><title>Links for the pip dependencies</title></head>\n"
            f"<body>\n{links}</body></html>\n"
        )
        (self.pip_dir / FIND_LINKS_FILE).write_text(page, encoding="utf-8")


def _dependency(
    name: str, version: str, purl: str, canonical: PackageURL, sha256: str, relative: str
) -> dict[str, Any]:
    return {
        "name": name,
        "type": "pip",
        "version": version,
        "dev": False,
        "replaces": None,
        "purl": purl,
        "canonical_purl": canonical.to_string(),
        "sha256": sha256,
        "bundle_path": f"deps/pip/{relative}",
        "requires": [],
    }
