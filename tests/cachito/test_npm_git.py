"""The npm package manager's git, http(s) and file: dependencies (builders/cachito/npm.py,
js_tarballs.py, js_packages.py): a git dependency on a loopback git server requiring an http
tarball, an http tarball and a file: directory, in lockfiles npm itself writes (v1 to v3),
their records and purls and an ``npm ci --offline --ignore-scripts`` from the bundle alone;
loopback dependencies refused outside the allow-list, git pinned to the address the guard
vetted, git dependencies locked to a commit, each git spec form npm writes with its purl, and
the git URLs Kiln cannot fetch."""

# ruff: noqa: F811 - the fixtures tests/cachito/js_fixtures.py holds are imported, then named

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from packageurl import PackageURL

from builders.cachito import errors, js_packages, js_tarballs, npm
from tests.cachito.git_server import GitServer
from tests.cachito.js_fixtures import (
    DEMO_MANIFEST,
    LOCAL_MANIFEST,
    RemoteDependencies,
    Request,
    apply_configuration,
    cache,  # noqa: F401
    config,
    fetch_error,
    installed_version,
    npm_ci_offline,
    npm_tarball,
    npm_user_config,  # noqa: F401
    offline_env,
    online_env,
    quote_all,
    remote_dependencies,
    request_tree,  # noqa: F401
    tarball_server,  # noqa: F401
)


# -- git, http(s) and file: dependencies -------------------------------------------------------
@dataclasses.dataclass
class RemoteProject:
    """A project with a git dependency (itself requiring an http tarball), an http tarball
    dependency and a file: directory dependency, its lockfile written by npm itself."""

    manifest: dict[str, Any]
    lock_version: int
    remote: RemoteDependencies


def remote_project(
    tmp_path: Path, git: GitServer, served: tuple[str, Path], user_config: Path, lock_version: int
) -> tuple[RemoteProject, dict[str, Any]]:
    remote = remote_dependencies(git, served)
    manifest = {
        "name": "remote-demo",
        "version": "2.0.0",
        "dependencies": {
            "foo": f"git+{remote.git_url}#{remote.commit}",
            "odd": remote.tarball_url,
            "local": "file:libs/local",
            "is-number": "7.0.0",
        },
    }
    work = tmp_path / "npm-lock"
    (work / "libs/local").mkdir(parents=True)
    (work / "package.json").write_text(json.dumps(manifest))
    (work / "libs/local/package.json").write_text(json.dumps(LOCAL_MANIFEST))
    env = online_env(
        tmp_path,
        npm_config_userconfig=str(user_config),
        npm_config_cache=str(tmp_path / "npm-lock-cache"),
    )
    subprocess.run(
        ["npm", "install", "--package-lock-only", "--ignore-scripts", "--no-audit",
         f"--lockfile-version={lock_version}"],
        cwd=work, env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    lock = json.loads((work / "package-lock.json").read_text())
    if lock_version == 1:  # npm 7+ writes 2 at least; version 1 is its "dependencies" part
        lock = {k: v for k, v in lock.items() if k != "packages"} | {"lockfileVersion": 1}
    return RemoteProject(manifest, lock_version, remote), lock


@pytest.mark.parametrize("lock_version", [1, 2, 3])
def test_git_url_and_file_dependencies(
    request_tree: Request,
    tmp_path: Path,
    tarball_server: tuple[str, Path],
    npm_user_config: Path,
    lock_version: int,
) -> None:
    with GitServer(tmp_path) as git:
        project, lock = remote_project(tmp_path, git, tarball_server, npm_user_config, lock_version)
        request_tree.write(
            {
                "package.json": project.manifest,
                "package-lock.json": lock,
                "libs/local/package.json": LOCAL_MANIFEST,
            }
        )
        request_tree.options["allow_cidrs"] = "127.0.0.0/8"
        result = request_tree.fetch(npm.fetch)

    deps = {d["name"]: d for d in result.packages[0]["dependencies"]}
    hex512 = hashlib.sha512(project.remote.tarball).hexdigest()
    bar = deps["bar"]
    assert bar["bundle_path"] == f"deps/npm/external-bar/bar-0.3.0-external-sha512-{hex512}.tgz"
    assert bar["version"] == project.remote.tarball_url
    assert bar["purl"] == "pkg:generic/bar?download_url=" + quote_all(project.remote.tarball_url)
    assert (request_tree.bundle / bar["bundle_path"]).read_bytes() == project.remote.tarball
    local = deps["local"]
    assert local["version"] == "file:libs/local" and local["bundle_path"] is None
    assert local["purl"] == "pkg:generic/local?file=libs%2Flocal"
    assert local["requires"] == ["pkg:npm/ms@2.1.3"]
    foo = deps["foo"]
    spec = f"git+{project.remote.git_url}#{project.remote.commit}"
    assert foo["version"] == spec
    assert foo["bundle_path"] == (
        f"deps/npm/external-foo/foo-1.2.0-external-gitcommit-{project.remote.commit}.tgz"
    )
    assert foo["purl"] == "pkg:generic/foo?vcs_url=" + quote_all(spec)
    assert foo["requires"] == [bar["canonical_purl"]]
    assert "vcs_url=git%2Bhttp" in foo["canonical_purl"]
    with tarfile.open(request_tree.bundle / foo["bundle_path"]) as packed:
        assert sorted(packed.getnames()) == ["package", "package/index.js", "package/package.json"]
    manifest = config(result, "app/package.json")
    assert manifest["dependencies"]["odd"] == f"file:../{bar['bundle_path']}"
    assert manifest["dependencies"]["local"] == "file:libs/local"

    apply_configuration(result, request_tree.bundle)
    env = offline_env(tmp_path, npm_user_config, result)
    node_modules = npm_ci_offline(request_tree.bundle, ".", env)
    assert installed_version(node_modules, "odd") == "0.3.0"
    assert (node_modules / "local").resolve() == (request_tree.app / "libs/local").resolve()
    assert installed_version(node_modules, "ms") == "2.1.3"
    assert (node_modules / "foo/index.js").read_text() == "module.exports = 42;\n"
    assert installed_version(node_modules, "bar") == "0.3.0"


def test_loopback_dependencies_need_the_allow_list(
    request_tree: Request, tmp_path: Path, tarball_server: tuple[str, Path]
) -> None:
    base, root = tarball_server
    (root / "bar-0.3.0.tgz").write_bytes(npm_tarball({"name": "bar", "version": "0.3.0"}))
    lock: dict[str, Any] = {
        "lockfileVersion": 3,
        "packages": {
            "": {
                "name": "demo",
                "version": "1.0.0",
                "dependencies": {"bar": f"{base}/bar-0.3.0.tgz"},
            },
            "node_modules/bar": {"version": "0.3.0", "resolved": f"{base}/bar-0.3.0.tgz"},
        },
    }
    request_tree.write({"package.json": DEMO_MANIFEST, "package-lock.json": lock})
    error = fetch_error(request_tree, npm.fetch)
    assert isinstance(error, errors.UnsupportedFeature)
    assert "loopback" in error.message and "allow-list" in error.message

    with GitServer(tmp_path) as git:
        url, commit = git.repo("foo", {"package.json": '{"name": "foo", "version": "1.0.0"}'})
        lock["packages"]["node_modules/bar"]["resolved"] = f"git+{url}#{commit}"
        request_tree.write({"package-lock.json": lock})
        error = fetch_error(request_tree, npm.fetch)
    assert isinstance(error, errors.UnsupportedFeature) and "loopback" in error.message
    assert not list((request_tree.bundle / "deps").rglob("*.tgz"))


def test_git_connects_only_to_the_address_the_guard_vetted(
    request_tree: Request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The git server's host name resolves in this process only (as if DNS answered the guard
    and then changed its answer): git reaches it only through the address Kiln resolved and
    checked, pinned with curl's --resolve."""
    resolve = socket.getaddrinfo

    def only_here(host: Any, *args: Any, **kwargs: Any) -> Any:
        return resolve("127.0.0.1" if host == "kiln-pinned.invalid" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", only_here)
    with GitServer(tmp_path) as git:
        url, commit = git.repo("foo", {"package.json": '{"name": "foo", "version": "1.0.0"}'})
        spec = f"git+{url.replace('127.0.0.1', 'kiln-pinned.invalid')}#{commit}"
        root = {"name": "demo", "version": "1.0.0", "dependencies": {"foo": spec}}
        lock = {
            "lockfileVersion": 3,
            "packages": {"": root, "node_modules/foo": {"version": "1.0.0", "resolved": spec}},
        }
        request_tree.write({"package.json": root, "package-lock.json": lock})
        request_tree.options["allow_cidrs"] = "127.0.0.0/8"
        [package] = request_tree.fetch(npm.fetch).packages
    [foo] = package["dependencies"]
    assert foo["bundle_path"] == f"deps/npm/external-foo/foo-1.0.0-external-gitcommit-{commit}.tgz"


def test_a_git_dependency_must_be_locked_to_a_commit(request_tree: Request) -> None:
    lock = {
        "lockfileVersion": 3,
        "packages": {
            "node_modules/foo": {
                "version": "1.0.0",
                "resolved": "git+https://example.com/foo.git#main",
            },
        },
    }
    request_tree.write({"package.json": DEMO_MANIFEST, "package-lock.json": lock})
    error = fetch_error(request_tree, npm.fetch)
    assert isinstance(error, errors.UnsupportedFeature)
    assert "must be locked to a full commit hash" in error.message


SHA = "dfa239d41b97504312fa95e13f4d593d95b49c4b"


@pytest.mark.parametrize(
    "spec, fetch_url, purl",
    [
        (
            f"github:ReactiveX/rxjs#{SHA}",
            "https://github.com/ReactiveX/rxjs.git",
            f"pkg:github/ReactiveX/rxjs@{SHA}",
        ),
        (
            f"ReactiveX/rxjs#{SHA}",
            "https://github.com/ReactiveX/rxjs.git",
            f"pkg:github/ReactiveX/rxjs@{SHA}",
        ),
        (
            f"gitlab:group/rxjs#{SHA}",
            "https://gitlab.com/group/rxjs.git",
            f"pkg:gitlab/group/rxjs@{SHA}",
        ),
        (
            f"git+ssh://git@github.com/ReactiveX/rxjs.git#{SHA}",
            "https://github.com/ReactiveX/rxjs.git",
            "pkg:generic/rxjs?vcs_url="
            + quote_all(f"git+ssh://git@github.com/ReactiveX/rxjs.git#{SHA}"),
        ),
        (
            f"git+ssh://git@github.com:ReactiveX/rxjs.git#{SHA}",
            "https://github.com/ReactiveX/rxjs.git",
            "pkg:generic/rxjs?vcs_url="
            + quote_all(f"git+ssh://git@github.com:ReactiveX/rxjs.git#{SHA}"),
        ),
        (
            f"git+https://example.com/r/rxjs.git#{SHA}",
            "https://example.com/r/rxjs.git",
            "pkg:generic/rxjs?vcs_url=" + quote_all(f"git+https://example.com/r/rxjs.git#{SHA}"),
        ),
    ],
)
def test_git_dependency_forms_and_their_purls(
    request_tree: Request, spec: str, fetch_url: str, purl: str
) -> None:
    """Where each git spec npm writes is fetched from (GitHub is not reachable from the
    tests, so the spec forms are checked here), and its Cachito purl."""
    assert js_tarballs.git_source(spec) == js_tarballs.GitSource(fetch_url, SHA)
    node = js_packages.Node("node_modules/rxjs", "rxjs", "git", None, spec)
    version, cachito, canonical = js_packages.node_purls(
        node, request_tree.context(), request_tree.app
    )
    assert (version, cachito) == (spec, purl)
    parsed = PackageURL.from_string(canonical)
    assert (parsed.type, parsed.name) == ("npm", "rxjs")
    assert parsed.qualifiers == {"vcs_url": f"git+{fetch_url}@{SHA}"}


@pytest.mark.parametrize(
    "spec", [f"git+ssh://git@example.com/rxjs.git#{SHA}", f"git+file:///srv/rxjs#{SHA}"]
)
def test_git_dependencies_kiln_cannot_fetch_are_refused(spec: str) -> None:
    with pytest.raises(errors.UnsupportedFeature, match="only http"):
        js_tarballs.git_source(spec)
