"""The tarballs of npm and yarn dependencies: where one comes from (the registry, an http(s)
URL, a git commit), fetching it into the bundle through the dependency cache with its
integrity checked, and packing a git dependency. Records and configuration:
builders/cachito/js_packages.py.

Bundle layout (cachito-behaviour.md §7), ``<m>`` being ``npm`` or ``yarn``:
``deps/<m>/<name>/<name>-<ver>.tgz`` (scoped: ``deps/<m>/@scope/name/scope-name-<ver>.tgz``),
``deps/<m>/external-<name>/<name>-<ver>-external-sha512-<hex>.tgz`` for http(s) tarballs and
``…-external-gitcommit-<sha>.tgz`` for git dependencies (the repository at the commit, fetched
as builders/cachito/git_fetch.py fetches, packed as npm packs a package: every file under
``package/``; no script runs)."""

from __future__ import annotations

import base64
import dataclasses
import functools
import gzip
import hashlib
import json
import re
import shutil
import ssl
import tarfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import urllib3

from builders.cachito import errors
from builders.cachito.context import FetchContext
from builders.cachito.git_fetch import GitFailed, fetch_commit
from chalicelib.adapters import web_fetch

DEFAULT_REGISTRY = "https://registry.npmjs.org"
#: hosts whose tarballs are the public registry's, fetched from the configured registry instead
PUBLIC_REGISTRY_HOSTS = frozenset({"registry.npmjs.org", "registry.yarnpkg.com"})
_NAME = re.compile(r"^(?:@[a-z0-9][\w.~-]*/)?[a-z0-9_~][\w.~-]*$", re.IGNORECASE)
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")
_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_FORGES = {"github": "github.com", "gitlab": "gitlab.com", "bitbucket": "bitbucket.org"}
FORGE_SPEC = re.compile(
    r"^(?:(?P<forge>github|gitlab|bitbucket):)?(?P<path>[\w.-]+/[\w.-]+)#(?P<ref>.+)$"
)
_SRI_STRENGTH = {"sha512": 4, "sha384": 3, "sha256": 2, "sha1": 1}
_MANIFEST_LIMIT = 1024 * 1024

_GIT_TIMEOUT = 600  # seconds, for each git command


# -- sources -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GitSource:
    fetch_url: str  # the https/http URL git fetches from
    commit: str


def is_git_spec(spec: str) -> bool:
    return spec.startswith(("git+", "git://")) or bool(FORGE_SPEC.match(spec))


def is_url_spec(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def git_source(spec: str) -> GitSource:
    """``git+https://host/repo.git#<commit>``, ``git+ssh://git@github.com/ns/r.git#<commit>``,
    ``github:ns/r#<commit>`` (and gitlab:, bitbucket:, bare ``ns/r#<commit>``)."""
    forge = FORGE_SPEC.match(spec)
    if forge and not spec.startswith(("git+", "git://")):
        host = _FORGES[forge.group("forge") or "github"]
        url, ref = f"https://{host}/{forge.group('path')}.git", forge.group("ref")
    else:
        url, _, ref = spec.partition("#")
        url = url.removeprefix("git+")
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme in ("ssh", "git") and host in _FORGES.values():
            scp_path = parts.netloc.rpartition("@")[2].partition(":")[2]  # git@host:ns/r.git
            path = parts.path.lstrip("/")
            if scp_path and not scp_path.isdigit():
                path = f"{scp_path}/{path}"
            url = f"https://{host}/{path}"
        elif parts.scheme not in ("http", "https"):
            raise errors.UnsupportedFeature(
                f"The git dependency {spec} cannot be fetched: only http(s) git URLs (and "
                "ssh or git URLs of github.com, gitlab.com and bitbucket.org) are supported"
            )
    if not _COMMIT.match(ref):
        raise errors.UnsupportedFeature(
            f"The git dependency {spec} must be locked to a full commit hash"
        )
    return GitSource(url, ref)


def registry_base(ctx: FetchContext) -> str:
    return str(ctx.options.get("npm_registry") or DEFAULT_REGISTRY).rstrip("/")


def is_registry_url(url: str, name: str, version: str, ctx: FetchContext) -> bool:
    """Whether ``url`` is ``name@version``'s tarball on the public or the configured registry."""
    parts = urllib.parse.urlsplit(url)
    hosts = PUBLIC_REGISTRY_HOSTS | {urllib.parse.urlsplit(registry_base(ctx)).hostname or ""}
    return (parts.hostname or "").lower() in hosts and parts.path.endswith(
        f"/{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"
    )


def check_name(name: str, version: str | None = None) -> None:
    if not _NAME.match(name) or (version is not None and not _VERSION.match(version)):
        raise errors.InvalidFileFormat(
            f"The dependency {name}@{version} has an invalid name or version"
        )


# -- integrity ---------------------------------------------------------------------------------
def sri(path: Path, algorithm: str = "sha512") -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return f"{algorithm}-{base64.b64encode(digest.digest()).decode('ascii')}"


def strongest(integrity: str) -> str | None:
    """The strongest hash an SRI string holds that Kiln can check (sha512 > … > sha1)."""
    known = [part for part in integrity.split() if part.split("-", 1)[0] in _SRI_STRENGTH]
    return max(known, key=lambda part: _SRI_STRENGTH[part.split("-", 1)[0]], default=None)


def integrity_check(integrity: str | None, what: str) -> Callable[[Path], None] | None:
    """A check raising InvalidChecksum unless the file matches ``integrity`` (None: none)."""
    expected = strongest(integrity or "")
    if expected is None:
        return None

    def check(path: Path) -> None:
        actual = sri(path, expected.split("-", 1)[0])
        if actual != expected:
            raise errors.InvalidChecksum(
                f"The integrity of {what} is {actual}, not {expected} as the lockfile says"
            )

    return check


def sha1_integrity(hex_digest: str) -> str | None:
    """yarn's ``resolved`` fragment (a hex sha1) as an SRI string."""
    if not re.fullmatch(r"[0-9a-f]{40}", hex_digest):
        return None
    return f"sha1-{base64.b64encode(bytes.fromhex(hex_digest)).decode('ascii')}"


# -- tarballs ----------------------------------------------------------------------------------
def file_stem(name: str) -> str:
    """``is-number`` → ``is-number``, ``@types/ms`` → ``types-ms`` (as ``npm pack`` names)."""
    return name[1:].replace("/", "-") if name.startswith("@") else name


def read_manifest(path: Path, what: str) -> dict[str, Any]:
    """The package.json of an npm tarball (the first one at most one directory deep, as npm
    finds it)."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            for count, member in enumerate(tar):
                if count > 100_000:
                    break
                if member.isfile() and re.sub(r"^[^/]+/", "", member.name, count=1) == (
                    "package.json"
                ):
                    stream = tar.extractfile(member)
                    data = stream.read(_MANIFEST_LIMIT) if stream else b""
                    manifest = json.loads(data)
                    if isinstance(manifest, dict):
                        return manifest
                    break
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise errors.InvalidFileFormat(
            f"{what} is not a valid npm package tarball: {exc}"
        ) from None
    raise errors.InvalidFileFormat(f"{what} is not a valid npm package tarball: no package.json")


@dataclasses.dataclass(frozen=True)
class Tarball:
    """A dependency's tarball in the bundle."""

    bundle_path: str  # "deps/npm/…"
    sha256: str
    integrity: str  # the sha512 SRI of the bundled file
    name: str  # the package's own name and version (its package.json for url/git)
    version: str


class TarballFetcher:
    """Fetches tarballs into ``deps/<manager>/`` through the dependency cache, each at most
    once per request (several threads may ask at once), within the request's limits."""

    def __init__(self, ctx: FetchContext, manager: str) -> None:
        self.ctx, self.manager = ctx, manager
        self.allow = web_fetch.AllowList.parse(str(ctx.options.get("allow_cidrs") or ""))
        self._done: dict[str, Tarball] = {}
        self._pending: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._bytes = 0
        self._scratch = ctx.work_dir / f"{manager}-scratch"

    def registry(self, name: str, version: str, integrity: str | None) -> Tarball:
        """``name@version`` from the configured registry; ``integrity`` (if any) is checked."""
        check_name(name, version)
        url = f"{registry_base(self.ctx)}/{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"
        what = f"{name}@{version}"
        verify = integrity_check(integrity, what)
        target = self.ctx.deps_dir / self.manager / name / f"{file_stem(name)}-{version}.tgz"

        def fetch(identity: str) -> Tarball:
            if verify is None:
                self.ctx.log(f"W: {self.manager}: {what} has no integrity in the lockfile")
            sha256 = self.ctx.cache.fetch(
                "npm",
                identity,
                target,
                lambda path: self._download(url, path, verify, None),
                verify=verify,
            )
            return self._finish(target, sha256, name, version)

        return self._once(f"npm:{name}@{version}:{integrity or ''}", fetch)

    def url(self, name: str, url: str, integrity: str | None) -> Tarball:
        """An http(s) tarball (through the address guard); ``integrity`` (if any) is checked."""
        verify = integrity_check(integrity, url)

        def fetch(identity: str) -> Tarball:
            scratch = self._scratch_file(identity)
            sha256 = self.ctx.cache.fetch(
                "npm",
                identity,
                scratch,
                lambda path: self._download(url, path, verify, self.allow),
                verify=verify,
            )
            sha512 = base64.b64decode(sri(scratch).removeprefix("sha512-")).hex()
            return self._place(scratch, sha256, name, f"sha512-{sha512}")

        return self._once(f"npm-url:{url}:{integrity or ''}", fetch)

    def git(self, name: str, spec: str) -> Tarball:
        """A git dependency at its commit, packed as an npm tarball."""
        source = git_source(spec)

        def fetch(identity: str) -> Tarball:
            scratch = self._scratch_file(identity)
            sha256 = self.ctx.cache.fetch(
                "npm", identity, scratch, lambda path: self._pack_git(source, path)
            )
            return self._place(scratch, sha256, name, f"gitcommit-{source.commit}")

        return self._once(f"npm-git:{source.fetch_url}#{source.commit}", fetch)

    # -- internals -------------------------------------------------------------------------
    def _once(self, identity: str, fetch: Callable[[str], Tarball]) -> Tarball:
        with self._lock:
            pending = self._pending.setdefault(identity, threading.Lock())
        with pending:
            if identity not in self._done:
                self.ctx.check_interrupted()
                self._done[identity] = fetch(identity)
            return self._done[identity]

    def _scratch_file(self, identity: str) -> Path:
        self._scratch.mkdir(parents=True, exist_ok=True)
        return self._scratch / f"{hashlib.sha256(identity.encode()).hexdigest()}.tgz"

    def _place(self, scratch: Path, sha256: str, name: str, tag: str) -> Tarball:
        """A url/git tarball, named by its own package.json, to its place in the bundle."""
        manifest = read_manifest(scratch, f"The dependency {name}")
        real_name = str(manifest.get("name") or name)
        version = str(manifest.get("version") or "")
        check_name(real_name, version)
        stem = f"{file_stem(real_name)}-{version}-external-{tag}"
        target = self.ctx.deps_dir / self.manager / f"external-{real_name}" / f"{stem}.tgz"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(scratch), target)
        return self._finish(target, sha256, real_name, version)

    def _finish(self, target: Path, sha256: str, name: str, version: str) -> Tarball:
        with self._lock:
            self._bytes += target.stat().st_size
            too_much = self._bytes > self.ctx.limits.max_bytes
        if too_much:
            raise errors.ValidationError(
                f"The {self.manager} dependencies exceed the request's limit of "
                f"{self.ctx.limits.max_bytes} bytes"
            )
        bundle_path = target.relative_to(self.ctx.deps_dir.parent).as_posix()
        return Tarball(bundle_path, sha256, sri(target), name, version)

    def _download(
        self,
        url: str,
        target: Path,
        verify: Callable[[Path], None] | None,
        allow: web_fetch.AllowList | None,
    ) -> None:
        """``url`` to ``target``: a user's URL through the address guard (``allow``), the
        operator's registry (``allow`` None) trusting the system's certificate store."""
        self.ctx.check_interrupted()
        room = self.ctx.limits.max_bytes - self._bytes
        try:
            with target.open("wb") as f:
                for chunk in self._chunks(url, allow):
                    room -= len(chunk)
                    if room < 0:
                        raise errors.ValidationError(
                            f"The {self.manager} dependencies exceed the request's limit of "
                            f"{self.ctx.limits.max_bytes} bytes"
                        )
                    f.write(chunk)
        except web_fetch.FetchRefused as exc:
            target.unlink(missing_ok=True)
            raise errors.UnsupportedFeature(
                f"The dependency at {url} cannot be fetched: {exc}"
            ) from None
        except web_fetch.FetchFailed as exc:
            target.unlink(missing_ok=True)
            raise errors.NetworkError(f"Failed to download {url}: {exc}") from None
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        if verify is not None:
            try:
                verify(target)
            except errors.InvalidChecksum:
                target.unlink(missing_ok=True)
                raise

    def _chunks(self, url: str, allow: web_fetch.AllowList | None) -> Iterator[bytes]:
        if allow is not None:
            with web_fetch.open_url(url, allow, timeout=60.0) as body:
                yield from body.chunks()
            return
        try:
            response = _registry_http().request("GET", url, preload_content=False)
        except urllib3.exceptions.HTTPError as exc:
            raise web_fetch.FetchFailed(str(exc)) from None
        try:
            if response.status >= 400:
                raise web_fetch.FetchFailed(f"HTTP status {response.status}")
            yield from response.stream(1024 * 1024)
        except urllib3.exceptions.HTTPError as exc:
            raise web_fetch.FetchFailed(str(exc)) from None
        finally:
            response.release_conn()

    def _pack_git(self, source: GitSource, target: Path) -> None:
        """Fetch the commit (git_fetch: the URL and the addresses git connects to pass the
        address guard, no redirect, http(s) only) and write its tree as ``package/…`` in a
        gzipped tarball."""
        self.ctx.check_interrupted()
        try:
            web_fetch.check_url(source.fetch_url, self.allow)
        except web_fetch.FetchRefused as exc:
            raise errors.UnsupportedFeature(
                f"The git dependency {source.fetch_url} cannot be fetched: {exc}"
            ) from None
        work = target.with_suffix(".git-work")
        shutil.rmtree(work, ignore_errors=True)
        try:
            repo, archive = work / "repo", work / "archive.tar"
            git = fetch_commit(
                source.fetch_url,
                source.commit,
                repo,
                self.allow,
                self.ctx.limits.max_source_bytes,
                timeout=_GIT_TIMEOUT,
                check_interrupted=self.ctx.check_interrupted,
            )
            try:
                git.run(repo, "archive", "--format=tar", "--prefix=package/", "-o", str(archive),
                        source.commit)  # fmt: skip
            except GitFailed as exc:
                raise errors.RepositoryAccessError(f"git archive failed: {exc}") from None
            with (
                archive.open("rb") as raw,
                target.open("wb") as out,
                gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as packed,
            ):
                shutil.copyfileobj(raw, packed, 1024 * 1024)
        finally:
            shutil.rmtree(work, ignore_errors=True)


@functools.cache
def _registry_http() -> urllib3.PoolManager:
    return urllib3.PoolManager(
        ssl_context=ssl.create_default_context(),
        retries=urllib3.Retry(
            total=4, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504)
        ),
        timeout=urllib3.Timeout(connect=30, read=120),
    )
