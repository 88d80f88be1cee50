"""The Cachito face as OSBS meets it: the `make up` stack, atomic-reactor's client behaviour
(tests/cachito/atomic_client.py), repositories served over HTTP on loopback, real PyPI and
npm downloads, a local Go module proxy; bundles downloaded with their Digest checked and built
with no network; content manifests and SBOMs of several requests; the dependency cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.local.process import StackProcess
from tests.cachito.atomic_client import (
    CachitoAPI,
    CachitoAPIUnsuccessfulRequest,
    apply_remote_source,
)
from tests.cachito.git_server import GitServer
from tests.cachito.go_proxy import GoProxy, go_mod_text
from tests.cachito.lockfiles import npm_lockfile

pytestmark = pytest.mark.slow

BUILD_REQUIREMENTS = "setuptools==75.3.0\nwheel==0.45.1\nflit-core==3.9.0\n"
PYPROJECT = '[project]\nname = "e2e-app"\nversion = "1.0.0"\n'
PACKAGE_JSON = {
    "name": "e2e-web",
    "version": "1.0.0",
    "dependencies": {"is-number": "7.0.0", "is-odd": "3.0.1"},
    "devDependencies": {"@types/ms": "0.7.34"},
}


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("repos")) as server:
        yield server


@pytest.fixture(scope="module")
def npm_lock(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real project's package-lock.json (v3), made by npm from the registry, no scripts."""
    return npm_lockfile(tmp_path_factory.mktemp("npm-lock"), PACKAGE_JSON)


@pytest.fixture(scope="module")
def yarn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """yarn 1.22.22 from the npm registry (its scripts not run)."""
    prefix = tmp_path_factory.mktemp("yarn")
    subprocess.run(
        ["npm", "install", "--prefix", str(prefix), "--ignore-scripts", "--no-audit", "--no-fund",
         "yarn@1.22.22"],
        check=True, capture_output=True,
        env={**os.environ, "npm_config_cache": str(prefix / ".npm")},
    )  # fmt: skip
    return prefix / "node_modules" / ".bin" / "yarn"


def client(stack: StackProcess, role: str = "user") -> CachitoAPI:
    return CachitoAPI(stack.info["cachito_url"], stack.info["tokens"][role], backoff=0.5)


def offline(command: list[str]) -> list[str]:
    """``command`` in a network namespace of its own where this machine allows one (root)."""
    if shutil.which("unshare") and subprocess.run(["unshare", "--net", "true"]).returncode == 0:
        return ["unshare", "--net", *command]
    return command


def dead_network_env() -> dict[str, str]:
    dead = "http://127.0.0.1:9/"
    return {"http_proxy": dead, "https_proxy": dead, "HTTP_PROXY": dead, "HTTPS_PROXY": dead}


def fetch_bundle(api: CachitoAPI, request_id: int, root: Path) -> dict[str, str]:
    """Download (Digest checked), unpack, apply env vars and configuration files as
    atomic-reactor does; returns the environment."""
    archive = api.download_sources(request_id, root.parent / f"{root.name}.tar.gz")
    assert api.last_digest and api.last_digest.startswith("sha-256=")
    root.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    assert (root / "app").is_dir() and (root / "deps").is_dir()
    env_vars = api.get_request_env_vars(request_id)
    files = api.get_request_config_files(request_id)
    return apply_remote_source(root, env_vars, files)


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        offline(command),
        cwd=cwd,
        env={**os.environ, **dead_network_env(), **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def logs(stack: StackProcess, request_id: int) -> str:
    response = requests.get(
        f"{stack.info['cachito_url']}/api/v1/requests/{request_id}/logs",
        headers={"Authorization": f"Bearer {stack.info['tokens']['user']}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.text


def python_project(git: GitServer, npm_lock: str, marker: str) -> tuple[str, str]:
    return git.repo(
        "webapp",
        {
            "pyproject.toml": PYPROJECT,
            "requirements.txt": "six==1.16.0\n",
            "requirements-build.txt": BUILD_REQUIREMENTS,
            "package.json": json.dumps(PACKAGE_JSON, indent=2),
            "package-lock.json": npm_lock,
            "README": marker,
        },
    )


def test_a_pip_and_npm_request_builds_offline_and_a_second_comes_from_the_cache(
    stack: StackProcess, git: GitServer, npm_lock: str, tmp_path: Path
) -> None:
    api = client(stack)
    repo, first_ref = python_project(git, npm_lock, "first")
    created = api.request_sources(repo, first_ref, pkg_managers=["pip", "npm"])
    assert created["state"] == "in_progress"
    assert created["state_reason"] == "The request was initiated"
    first = api.wait_for_request(created["id"], timeout=600)
    reasons = [entry["state_reason"] for entry in first["state_history"]]
    assert "Fetching the application source" in reasons and reasons[0] == "Completed successfully"
    assert {(p["type"], p["name"]) for p in first["packages"]} == {
        ("pip", "e2e-app"),
        ("npm", "e2e-web"),
    }
    names = {(d["type"], d["name"], d.get("dev")) for d in first["dependencies"]}
    assert ("pip", "six", False) in names and ("npm", "@types/ms", True) in names

    root = tmp_path / "first"
    env = fetch_bundle(api, first["id"], root)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    run(
        [str(venv / "bin/python"), "-m", "pip", "install", "-r", "requirements.txt"],
        root / "app",
        env,
    )
    run([str(venv / "bin/python"), "-c", "import six"], root / "app", {})
    npm_env = {"npm_config_cache": str(tmp_path / "npm-cache"), **env}
    npm_env["npm_config_registry"] = "http://127.0.0.1:9/"
    run(
        ["npm", "ci", "--offline", "--ignore-scripts", "--no-audit", "--no-fund"],
        root / "app",
        npm_env,
    )
    assert (root / "app/node_modules/is-odd/package.json").exists()

    # the same project at a new commit: nothing comes from a registry
    repo, second_ref = python_project(git, npm_lock, "second")
    second = api.wait_for_request(
        api.request_sources(repo, second_ref, pkg_managers=["pip", "npm"])["id"], timeout=600
    )
    log = logs(stack, second["id"])
    assert "from the dependency cache" in log and "fetched from its registry" not in log, log
    assert second["dependencies"] == first["dependencies"]

    manifest = api.get_image_content_manifest([first["id"], second["id"]])
    purls = [entry["purl"] for entry in manifest["image_contents"]]
    assert purls == sorted(purls) and len(purls) >= 2
    sbom = api.get_sbom([first["id"], second["id"]])
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.4"
    assert any(c["purl"] == "pkg:pypi/six@1.16.0" for c in sbom["components"])


def test_a_gomod_request_from_a_local_module_proxy_builds_offline(
    stack: StackProcess, git: GitServer, tmp_path: Path
) -> None:
    assert stack.go_proxy is not None
    proxy = GoProxy(stack.go_proxy)
    proxy.add(
        "example.com/greet",
        "v1.0.0",
        {"greet.go": 'package greet\n\nfunc Hello() string { return "hello" }\n'},
    )
    main = (
        'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/greet"\n)\n\n'
        "func main() { fmt.Println(greet.Hello()) }\n"
    )
    repo, ref = git.repo(
        "goapp",
        {
            "go.mod": go_mod_text("example.com/goapp", {"example.com/greet": "v1.0.0"}),
            "go.sum": proxy.go_sum("example.com/greet", "v1.0.0"),
            "main.go": main,
        },
    )
    api = client(stack)
    done = api.wait_for_request(
        api.request_sources(repo, ref)["id"], timeout=600
    )  # gomod: the default
    versions = {(p["type"], p["name"]): p["version"] for p in done["packages"]}
    # the module's version as Go derives it from git: no tag, so a pseudo-version of the commit
    assert versions[("gomod", "example.com/goapp")] == f"v0.0.0-20240101000000-{ref[:12]}"
    root = tmp_path / "bundle"
    env = fetch_bundle(api, done["id"], root)
    assert env["GOMODCACHE"] == str(root / "deps/gomod/pkg/mod")
    go = str(Path(sys.executable).parent / "go")
    out = run(
        [go, "run", "."], root / "app", {**env, "HOME": str(tmp_path), "GOTOOLCHAIN": "local"}
    )
    assert out.strip() == "hello"


def test_a_yarn_request_installs_offline_from_its_bundle(
    stack: StackProcess, git: GitServer, yarn: Path, tmp_path: Path
) -> None:
    work = tmp_path / "lock"
    work.mkdir()
    (work / "package.json").write_text(json.dumps(PACKAGE_JSON), encoding="utf-8")
    online = {**os.environ, "HOME": str(work), "YARN_CACHE_FOLDER": str(work / ".yarn-cache")}
    subprocess.run(
        [str(yarn), "install", "--ignore-scripts", "--non-interactive"],
        cwd=work, check=True, capture_output=True, env=online,
    )  # fmt: skip
    repo, ref = git.repo(
        "yarnapp",
        {"package.json": json.dumps(PACKAGE_JSON), "yarn.lock": (work / "yarn.lock").read_text()},
    )
    api = client(stack)
    done = api.wait_for_request(
        api.request_sources(repo, ref, pkg_managers=["yarn"])["id"], timeout=600
    )
    assert {(d["type"], d["name"]) for d in done["dependencies"]} >= {("yarn", "is-odd")}
    root = tmp_path / "bundle"
    env = fetch_bundle(api, done["id"], root)
    assert (root / "app/.yarnrc").exists()
    offline_env = {
        **env,
        "HOME": str(tmp_path / "home"),
        "YARN_CACHE_FOLDER": str(tmp_path / "empty-yarn-cache"),
        "npm_config_registry": "http://127.0.0.1:9/",
    }
    run(
        [str(yarn), "install", "--frozen-lockfile", "--offline", "--ignore-scripts",
         "--non-interactive"],
        root / "app",
        offline_env,
    )  # fmt: skip
    assert (root / "app/node_modules/is-odd/package.json").exists()


def test_submodules_and_the_git_dir_are_in_the_bundle(
    stack: StackProcess, git: GitServer, tmp_path: Path
) -> None:
    lib, lib_ref = git.repo("lib", {"lib.txt": "from the submodule\n"})
    repo, ref = git.repo(
        "withsub", {"main.txt": "top\n"}, submodules={"vendor/lib": (lib, lib_ref)}
    )
    api = client(stack)
    done = api.wait_for_request(
        api.request_sources(repo, ref, pkg_managers=["git-submodule"], flags=["include-git-dir"])[
            "id"
        ],
        timeout=600,
    )
    [submodule] = done["packages"]
    assert submodule["type"] == "git-submodule" and submodule["path"] == "vendor/lib"
    root = tmp_path / "bundle"
    fetch_bundle(api, done["id"], root)
    assert (root / "app/vendor/lib/lib.txt").read_text() == "from the submodule\n"
    assert (root / "app/.git").is_dir()


def test_an_npm_request_without_a_lockfile_fails_as_a_client_error(
    stack: StackProcess, git: GitServer
) -> None:
    repo, ref = git.repo("nolock", {"package.json": json.dumps(PACKAGE_JSON)})
    api = client(stack)
    created = api.request_sources(repo, ref, pkg_managers=["npm"])
    with pytest.raises(CachitoAPIUnsuccessfulRequest):
        api.wait_for_request(created["id"], timeout=600)
    failed: dict[str, Any] = api.session.get(api._url(f"requests/{created['id']}")).json()
    assert failed["state"] == "failed"
    assert failed["state_reason"] == (
        "The npm-shrinkwrap.json or package-lock.json file must be present for the npm "
        "package manager"
    )
    assert (failed["error_origin"], failed["error_type"]) == ("client", "InvalidRepoStructure")
    download = api.session.get(api._url(f"requests/{created['id']}/download"))
    assert download.status_code == 400
