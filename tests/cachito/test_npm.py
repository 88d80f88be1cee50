"""The npm package manager of Cachito requests (builders/cachito/npm.py) with registry
dependencies: real npm registry downloads for each lockfile format (package-lock.json v1 to v3,
npm-shrinkwrap.json) and for a package below the root, the dependency cache on moto's S3 serving
a second request and replacing a corrupted tarball, the refusals (integrity mismatches, missing
or broken lockfiles, node_modules, file: dependencies outside the repository, the limits), and
the proof: ``npm ci --offline --ignore-scripts`` installs from the bundle alone (the registry
pointed at a closed port, an empty npm cache). Git, http(s) and file: dependencies are in
test_npm_git.py."""

# ruff: noqa: F811 - the fixtures tests/cachito/js_fixtures.py holds are imported, then named

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from builders.cachito import errors, npm
from builders.cachito.context import Limits
from builders.cachito.dep_cache import S3DependencyCache, file_sha256
from tests.cachito.js_fixtures import (
    DEMO,
    DEMO_MANIFEST,
    IS_NUMBER_SHA1,
    REF,
    Request,
    apply_configuration,
    cache,  # noqa: F401
    config,
    fetch_error,
    installed_version,
    lockfile,
    npm_ci_offline,
    npm_user_config,  # noqa: F401
    offline_env,
    request_tree,  # noqa: F401
)


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
