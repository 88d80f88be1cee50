"""The npm package manager of Cachito requests (builders/cachito/npm.py), with real npm
registry downloads, the dependency cache on moto's S3, git and tarball dependencies served on
loopback, and the proof: ``npm ci --offline --ignore-scripts`` installs from the bundle alone
(the registry pointed at a closed port, an empty npm cache)."""

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

import boto3
import pytest
from packageurl import PackageURL

from builders.cachito import errors, js_packages, js_tarballs, npm
from builders.cachito.context import Limits
from builders.cachito.dep_cache import S3DependencyCache, file_sha256
from tests.cachito.git_server import GitServer
from tests.cachito.js_fixtures import (
    DEMO,
    DEMO_MANIFEST,
    IS_NUMBER_SHA1,
    LOCAL_MANIFEST,
    REF,
    RemoteDependencies,
    Request,
    apply_configuration,
    cache,  # noqa: F401
    config,
    fetch_error,
    installed_version,
    lockfile,
    npm_tarball,
    npm_user_config,  # noqa: F401
    offline_env,
    online_env,
    quote_all,
    remote_dependencies,
    request_tree,  # noqa: F401
    tarball_server,  # noqa: F401
)


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


# -- registry dependencies, each lockfile format -----------------------------------------------
@pytest.mark.parametrize(
    "lockfile_name, version",
    [
        ("package-lock.json", 1),
        ("package-lock.json", 2),
        ("package-lock.json", 3),
        ("npm-shrinkwrap.json", 3),
    ],
)
def test_registry_dependencies_install_offline_from_the_bundle(
    request_tree: Request, npm_user_config: Path, tmp_path: Path, lockfile_name: str, version: int
) -> None:
    # an old lockfile carries sha1 integrity only
    overrides = {"node_modules/is-number": IS_NUMBER_SHA1} if version == 1 else {}
    request_tree.write({"package.json": DEMO_MANIFEST, lockfile_name: lockfile(version, overrides)})
    result = request_tree.fetch(npm.fetch)

    [package] = result.packages
    assert package["name"] == "demo" and package["version"] == "1.0.0"
    assert package["type"] == "npm" and "path" not in package
    assert package["purl"] == f"pkg:github/kiln-tests/demo@{REF}"
    assert package["canonical_purl"].startswith("pkg:npm/demo@1.0.0?vcs_url=")
    deps = {(d["name"], d["version"]): d for d in package["dependencies"]}
    assert sorted(deps) == sorted((p.name, p.version) for p in DEMO)
    for pkg in DEMO:
        dep = deps[(pkg.name, pkg.version)]
        assert dep["type"] == "npm" and dep["dev"] is pkg.dev and dep["replaces"] is None
        bundled = request_tree.bundle / dep["bundle_path"]
        assert dep["sha256"] == file_sha256(bundled)
    scoped = deps[("@types/ms", "0.7.34")]
    assert scoped["bundle_path"] == "deps/npm/@types/ms/types-ms-0.7.34.tgz"
    assert scoped["purl"] == scoped["canonical_purl"] == "pkg:npm/%40types/ms@0.7.34"
    assert deps[("is-number", "7.0.0")]["bundle_path"] == "deps/npm/is-number/is-number-7.0.0.tgz"
    assert deps[("is-odd", "3.0.1")]["requires"] == ["pkg:npm/is-number@6.0.0"]
    assert result.environment_variables["CYPRESS_INSTALL_BINARY"] == {
        "value": "0",
        "kind": "literal",
    }

    rewritten = config(result, f"app/{lockfile_name}")
    entries = rewritten["packages"] if version >= 2 else rewritten["dependencies"]
    nested = (
        entries["node_modules/is-odd/node_modules/is-number"]
        if version >= 2
        else entries["is-odd"]["dependencies"]["is-number"]
    )
    assert nested["resolved"] == "file:../deps/npm/is-number/is-number-6.0.0.tgz"
    assert not any("registry.npmjs.org" in f["content"] for f in result.configuration_files)

    apply_configuration(result, request_tree.bundle)
    env = offline_env(tmp_path, npm_user_config, result)
    node_modules = npm_ci_offline(request_tree.bundle, ".", env)
    assert installed_version(node_modules, "is-number") == "7.0.0"
    assert installed_version(node_modules / "is-odd" / "node_modules", "is-number") == "6.0.0"
    assert installed_version(node_modules, "@types/ms") == "0.7.34"
    assert installed_version(node_modules, "ms") == "2.1.3"


def test_two_packages_one_below_the_root(
    request_tree: Request, npm_user_config: Path, tmp_path: Path
) -> None:
    # the one below the root omits registry URLs (npm's omit-lockfile-registry-resolved)
    bare = lockfile(3)
    for entry in bare["packages"].values():
        entry.pop("resolved", None)
    request_tree.write(
        {
            "package.json": DEMO_MANIFEST,
            "package-lock.json": lockfile(3),
            "client/package.json": DEMO_MANIFEST,
            "client/package-lock.json": bare,
        }
    )
    result = request_tree.fetch(npm.fetch, (".", "client"))

    root, client = result.packages
    assert "path" not in root and client["path"] == "client"
    assert client["purl"] == f"pkg:github/kiln-tests/demo@{REF}#client"
    assert client["canonical_purl"].endswith("#client")
    assert client["dependencies"] == root["dependencies"]
    assert request_tree.cache.fetched == len(DEMO)  # each tarball once
    assert 'Fetching the npm dependencies at the "client" directory' in request_tree.steps
    rewritten = config(result, "app/client/package-lock.json")
    assert rewritten["packages"]["node_modules/ms"]["resolved"] == (
        "file:../../deps/npm/ms/ms-2.1.3.tgz"
    )
    apply_configuration(result, request_tree.bundle)
    env = offline_env(tmp_path, npm_user_config, result)
    for subpath in (".", "client"):
        node_modules = npm_ci_offline(request_tree.bundle, subpath, env)
        assert installed_version(node_modules, "is-odd") == "3.0.1"


# -- the dependency cache ----------------------------------------------------------------------
def test_a_second_request_fetches_nothing(
    tmp_path: Path, cache: S3DependencyCache, npm_user_config: Path, aws: Any
) -> None:
    files = {"package.json": DEMO_MANIFEST, "package-lock.json": lockfile(3)}
    first = Request(tmp_path / "first", cache)
    first.write(files)
    first.fetch(npm.fetch)
    assert cache.fetched == len(DEMO)

    # another request, maybe on another host: the same shared cache, its own counters
    logs: list[str] = []
    again = S3DependencyCache(
        boto3.client("s3", region_name="us-east-1"), aws.bucket, log=logs.append
    )
    second = Request(tmp_path / "second", again)
    second.write(files)
    result = second.fetch(npm.fetch)
    assert again.fetched == 0 and again.hits == len(DEMO)
    assert sum("from the dependency cache" in line for line in logs) == len(DEMO)
    for dep in result.packages[0]["dependencies"]:
        assert file_sha256(second.bundle / dep["bundle_path"]) == dep["sha256"]
    apply_configuration(result, second.bundle)
    npm_ci_offline(second.bundle, ".", offline_env(tmp_path, npm_user_config, result))


def test_a_corrupted_cached_tarball_is_fetched_again(
    tmp_path: Path, cache: S3DependencyCache, aws: Any
) -> None:
    files = {"package.json": DEMO_MANIFEST, "package-lock.json": lockfile(3)}
    first = Request(tmp_path / "first", cache)
    first.write(files)
    deps = first.fetch(npm.fetch).packages[0]["dependencies"]
    is_odd = next(d for d in deps if d["name"] == "is-odd")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=aws.bucket, Key=cache.blob_key(is_odd["sha256"]), Body=b"rotten")

    second = Request(tmp_path / "second", cache)
    second.write(files)
    deps = second.fetch(npm.fetch).packages[0]["dependencies"]
    assert cache.fetched == len(DEMO) + 1
    again = next(d for d in deps if d["name"] == "is-odd")
    assert again["sha256"] == is_odd["sha256"]
    assert file_sha256(second.bundle / again["bundle_path"]) == is_odd["sha256"]


# -- refusals ----------------------------------------------------------------------------------
def test_an_integrity_mismatch_fails_the_request(request_tree: Request) -> None:
    wrong = DEMO[0].integrity  # @types/ms's, claimed for is-number
    request_tree.write(
        {
            "package.json": DEMO_MANIFEST,
            "package-lock.json": lockfile(3, {"node_modules/is-number": wrong}),
        }
    )
    error = fetch_error(request_tree, npm.fetch)
    assert isinstance(error, errors.InvalidChecksum) and error.origin == "client"
    assert "is-number@7.0.0" in error.message and wrong in error.message
    assert not (request_tree.bundle / "deps/npm/is-number/is-number-7.0.0.tgz").exists()


def test_without_a_lockfile_the_request_fails_as_upstream_says(request_tree: Request) -> None:
    request_tree.write({"package.json": DEMO_MANIFEST, "client/package.json": DEMO_MANIFEST})
    error = fetch_error(request_tree, npm.fetch)
    assert isinstance(error, errors.InvalidRepoStructure)
    assert error.message == (
        "The npm-shrinkwrap.json or package-lock.json file must be present for the npm "
        "package manager"
    )
    assert str(error) == f"InvalidRepoStructure: {error.message}"
    error = fetch_error(request_tree, npm.fetch, "client")
    assert error.message == (
        "The client/npm-shrinkwrap.json or client/package-lock.json file must be present for "
        "the npm package manager"
    )


def test_a_node_modules_directory_is_refused(request_tree: Request) -> None:
    request_tree.write(
        {
            "package.json": DEMO_MANIFEST,
            "package-lock.json": lockfile(3),
            "node_modules/is-number/index.js": "",
        }
    )
    error = fetch_error(request_tree, npm.fetch)
    assert isinstance(error, errors.InvalidRepoStructure)
    assert error.message == "The node_modules directory cannot be present in the source repository"


def test_a_missing_package_json_is_refused(request_tree: Request) -> None:
    request_tree.write({"web/package-lock.json": lockfile(3)})
    error = fetch_error(request_tree, npm.fetch, "web")
    assert isinstance(error, errors.InvalidRepoStructure)
    assert error.message == "The web/package.json file must be present for the npm package manager"


@pytest.mark.parametrize(
    "lock_text, error_type, text",
    [
        ("{not json", errors.InvalidFileFormat, "The package-lock.json file is not valid JSON"),
        ('{"lockfileVersion": 4}', errors.UnsupportedFeature, "lockfileVersion 4"),
        (
            '{"lockfileVersion": 3, "packages": {"node_modules/x": {"dev": true}}}',
            errors.InvalidFileFormat,
            "The dependency node_modules/x has no version or location",
        ),
    ],
)
def test_a_broken_lockfile_is_refused(
    request_tree: Request, lock_text: str, error_type: type[errors.CachitoError], text: str
) -> None:
    request_tree.write({"package.json": DEMO_MANIFEST, "package-lock.json": lock_text})
    error = fetch_error(request_tree, npm.fetch)
    assert isinstance(error, error_type) and text in error.message


def test_a_file_dependency_outside_the_repository_is_refused(request_tree: Request) -> None:
    lock = {
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "demo", "version": "1.0.0", "dependencies": {"x": "file:../../x"}},
            "node_modules/x": {"resolved": "../../x", "link": True},
            "../../x": {"version": "1.0.0"},
        },
    }
    request_tree.write({"package.json": DEMO_MANIFEST, "package-lock.json": lock})
    error = fetch_error(request_tree, npm.fetch)
    assert isinstance(error, errors.UnsupportedFeature)
    assert error.message == "The file dependency x (../../x) is outside of the repository"


def test_the_dependency_limits(request_tree: Request) -> None:
    request_tree.write({"package.json": DEMO_MANIFEST, "package-lock.json": lockfile(3)})
    request_tree.limits = Limits(max_dependencies=3)
    error = fetch_error(request_tree, npm.fetch)
    assert isinstance(error, errors.ValidationError) and "limit of 3" in error.message
    request_tree.limits = Limits(max_bytes=6000)  # the five tarballs are 14 KiB
    error = fetch_error(request_tree, npm.fetch)
    assert isinstance(error, errors.ValidationError)
    assert "exceed the request's limit of 6000 bytes" in error.message


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
