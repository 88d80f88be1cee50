"""What the npm and yarn manager tests share (tests/cachito/test_npm.py, test_npm_git.py,
test_yarn.py): a small real project (registry packages: a scoped one, a nested version, a dev
one) and its lockfiles, a request's working tree with the dependency cache on moto's S3,
tarballs served on loopback, and how a client applies the result (configuration files written
under the bundle, environment variables exported) before installing with no network, as
``npm ci --offline`` does for both npm modules; and the remote dependencies both managers'
lockfiles name: a git repository and an http tarball on loopback."""

from __future__ import annotations

import base64
import dataclasses
import functools
import http.server
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from builders.cachito import errors
from builders.cachito.context import FetchContext, Limits, ManagerResult
from builders.cachito.dep_cache import S3DependencyCache
from tests.cachito.git_server import GitServer

REPO = "https://github.com/Kiln-Tests/Demo.git"
REF = "0123456789abcdef0123456789abcdef01234567"
REGISTRY = "https://registry.npmjs.org"
UNREACHABLE = "http://127.0.0.1:9/"


@dataclasses.dataclass(frozen=True)
class Pkg:
    """One registry package of the demo project, as its lockfile states it."""

    key: str  # its place under node_modules
    name: str
    version: str
    integrity: str
    dev: bool = False
    requires: tuple[tuple[str, str], ...] = ()

    @property
    def url(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"


DEMO = (
    Pkg(
        "node_modules/@types/ms",
        "@types/ms",
        "0.7.34",
        "sha512-nG96G3Wp6acyAgJqGasjODb+acrI7KltPiRxzHPXnP3NgI28bpQDRv53olbqGXbfcgF5aiiHmO3xpwEpS5Ld9g==",
    ),
    Pkg(
        "node_modules/is-number",
        "is-number",
        "7.0.0",
        "sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng==",
    ),
    Pkg(
        "node_modules/is-odd",
        "is-odd",
        "3.0.1",
        "sha512-CQpnWPrDwmP1+SMHXZhtLtJv90yiyVfluGsX5iNCVkrhQtU3TQHsUWPG9wkdk9Lgd5yNpAg9jQEo90CBaXgWMA==",
        requires=(("is-number", "^6.0.0"),),
    ),
    Pkg(
        "node_modules/is-odd/node_modules/is-number",
        "is-number",
        "6.0.0",
        "sha512-Wu1VHeILBK8KAWJUAiSZQX94GmOE45Rg6/538fKwiloUu21KncEkYGPqob2oSZ5mUT73vLGrHQjKw3KMPwfDzg==",
    ),
    Pkg(
        "node_modules/ms",
        "ms",
        "2.1.3",
        "sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA==",
        dev=True,
    ),
)
#: is-number 7.0.0's sha1 (old lockfiles carry only sha1)
IS_NUMBER_SHA1 = "sha1-dTU0W4lnNNX4DE0GxQlVUnoU8Ss="
DEMO_MANIFEST = {
    "name": "demo",
    "version": "1.0.0",
    "dependencies": {"@types/ms": "0.7.34", "is-number": "7.0.0", "is-odd": "3.0.1"},
    "devDependencies": {"ms": "2.1.3"},
}


def lockfile(version: int, integrity: dict[str, str] | None = None) -> dict[str, Any]:
    """The demo project's lockfile in format ``version`` (``integrity``: per key override)."""
    integrity, pkgs = integrity or {}, DEMO
    lock: dict[str, Any] = {"name": "demo", "version": "1.0.0", "lockfileVersion": version}
    lock["requires"] = True
    if version >= 2:
        root = {k: v for k, v in DEMO_MANIFEST.items() if k != "devDependencies"}
        packages: dict[str, Any] = {
            "": {**root, "devDependencies": DEMO_MANIFEST["devDependencies"]}
        }
        for pkg in pkgs:
            entry: dict[str, Any] = {"version": pkg.version, "resolved": pkg.url}
            entry["integrity"] = integrity.get(pkg.key, pkg.integrity)
            if pkg.dev:
                entry["dev"] = True
            if pkg.requires:
                entry["dependencies"] = dict(pkg.requires)
            packages[pkg.key] = entry
        lock["packages"] = packages
    if version <= 2:
        top: dict[str, Any] = {}
        for pkg in pkgs:
            entry = {"version": pkg.version, "resolved": pkg.url}
            entry["integrity"] = integrity.get(pkg.key, pkg.integrity)
            if pkg.dev:
                entry["dev"] = True
            if pkg.requires:
                entry["requires"] = dict(pkg.requires)
            parent, _, name = pkg.key.rpartition("node_modules/")
            holder = top
            for part in parent.split("node_modules/")[1:]:
                holder = holder[part.rstrip("/")].setdefault("dependencies", {})
            holder[name] = entry
        lock["dependencies"] = top
    return lock


#: what npm and yarn need from this machine's environment to reach the registry
NETWORK_ENV = ("NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY",
               "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")  # fmt: skip


def online_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment for npm or yarn with network: this machine's CA and proxy settings."""
    env = {name: os.environ[name] for name in NETWORK_ENV if name in os.environ}
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **env, **extra}


# -- fixtures and helpers ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def npm_user_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty npm user configuration: the machine's own must not change what npm does."""
    path = tmp_path_factory.mktemp("npmrc") / "npmrc"
    path.write_text("")
    return path


@pytest.fixture
def cache(aws: Any) -> S3DependencyCache:
    return S3DependencyCache(boto3.client("s3", region_name="us-east-1"), aws.bucket, log=print)


@dataclasses.dataclass
class Request:
    """A request's working tree: ``bundle/app`` (the repository) and ``bundle/deps``."""

    root: Path
    cache: S3DependencyCache
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    limits: Limits = dataclasses.field(default_factory=Limits)
    logs: list[str] = dataclasses.field(default_factory=list)
    steps: list[str] = dataclasses.field(default_factory=list)

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    @property
    def app(self) -> Path:
        return self.bundle / "app"

    def write(self, files: dict[str, Any]) -> None:
        for path, content in files.items():
            target = self.app / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, (dict, list)):
                content = json.dumps(content, indent=2)
            target.write_text(content)

    def context(self) -> FetchContext:
        (self.bundle / "deps").mkdir(parents=True, exist_ok=True)
        (self.root / "work").mkdir(parents=True, exist_ok=True)
        return FetchContext(
            app_dir=self.app,
            deps_dir=self.bundle / "deps",
            repo=REPO,
            ref=REF,
            flags=frozenset(),
            dependency_replacements=[],
            cache=self.cache,
            log=self.logs.append,
            step=self.steps.append,
            check_interrupted=lambda: None,
            limits=self.limits,
            options={"npm_registry": REGISTRY, **self.options},
            work_dir=self.root / "work",
        )

    def fetch(
        self, manager: Callable[..., ManagerResult], paths: tuple[str, ...] = (".",)
    ) -> ManagerResult:
        self.app.mkdir(parents=True, exist_ok=True)
        return manager(self.context(), [{"path": path} for path in paths])


@pytest.fixture
def request_tree(tmp_path: Path, cache: S3DependencyCache) -> Request:
    return Request(tmp_path / "request", cache)


def apply_configuration(result: ManagerResult, bundle: Path) -> None:
    """As atomic-reactor does: each configuration file written under the bundle root."""
    for item in result.configuration_files:
        assert item["type"] == "base64" and item["path"].startswith("app/")
        target = bundle / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(item["content"]))


def offline_env(tmp_path: Path, npm_user_config: Path, result: ManagerResult) -> dict[str, str]:
    """No network: the registry is a closed port, the package cache empty."""
    cache_dir = tmp_path / "empty-cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "npm_config_userconfig": str(npm_user_config),
        "npm_config_cache": str(cache_dir),
        "npm_config_registry": UNREACHABLE,
        "YARN_CACHE_FOLDER": str(cache_dir),
        "YARN_REGISTRY": UNREACHABLE,
    }
    env.update({name: var["value"] for name, var in result.environment_variables.items()})
    return env


def npm_ci_offline(bundle: Path, subpath: str, env: dict[str, str]) -> Path:
    """A copy of the bundle, its configuration applied by the caller, installed offline."""
    done = subprocess.run(
        ["npm", "ci", "--offline", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=bundle / "app" / subpath,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return bundle / "app" / subpath / "node_modules"


def installed_version(node_modules: Path, name: str) -> str:
    return str(json.loads((node_modules / name / "package.json").read_text())["version"])


def config(result: ManagerResult, path: str) -> Any:
    for item in result.configuration_files:
        if item["path"] == path:
            return json.loads(base64.b64decode(item["content"]))
    raise AssertionError(f"no configuration file {path}: {result.configuration_files}")


def fetch_error(tree: Request, manager: Callable[..., ManagerResult], *paths: str) -> Any:
    with pytest.raises(errors.CachitoError) as caught:
        tree.fetch(manager, paths or (".",))
    return caught.value


def npm_tarball(manifest: dict[str, Any], files: dict[str, str] | None = None) -> bytes:
    """An npm package tarball (``package/…``)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in {"package.json": json.dumps(manifest), **(files or {})}.items():
            data = text.encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def tarball_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Files served over http on loopback: (base URL, directory)."""
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def quote_all(text: str) -> str:
    return urllib.parse.quote(text, safe="")


# -- remote dependencies -----------------------------------------------------------------------
#: the ``file:libs/local`` dependency's package.json
LOCAL_MANIFEST = {"name": "local", "version": "0.1.0", "dependencies": {"ms": "2.1.3"}}


@dataclasses.dataclass(frozen=True)
class RemoteDependencies:
    """``foo`` 1.2.0 in a git repository (its index.js ``module.exports = 42;``), requiring
    ``bar`` 0.3.0, an http tarball."""

    git_url: str
    commit: str
    tarball_url: str
    tarball: bytes


def remote_dependencies(git: GitServer, served: tuple[str, Path]) -> RemoteDependencies:
    """``bar``'s tarball on the tarball server, ``foo``'s repository on ``git``."""
    base, root = served
    tarball = npm_tarball({"name": "bar", "version": "0.3.0"}, {"index.js": "exports.bar = 3\n"})
    (root / "bar-0.3.0.tgz").write_bytes(tarball)
    tarball_url = f"{base}/bar-0.3.0.tgz"
    foo = {"name": "foo", "version": "1.2.0", "dependencies": {"bar": tarball_url}}
    git_url, commit = git.repo(
        "foo", {"package.json": json.dumps(foo), "index.js": "module.exports = 42;\n"}
    )
    return RemoteDependencies(git_url, commit, tarball_url, tarball)
