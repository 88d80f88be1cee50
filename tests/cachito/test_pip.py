"""The pip package manager of Cachito requests, what a request fetches and records: real PyPI
sdists with their hashes and records, the S3 dependency cache (in-process moto) answering a
second request and replacing a corrupt object, URL dependencies from a loopback web server and
git dependencies from a loopback git server, package names read without running setup.py, an
operator's HTML package index, and a bundle that `pip install` builds from with no network (the
refusals and their error messages are in test_pip_refusals.py)."""

# ruff: noqa: F811 - the fixtures tests/cachito/pip_fixtures.py holds are imported, then named

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import boto3
import pytest

from builders.cachito import pip
from builders.cachito.dep_cache import S3DependencyCache
from builders.cachito.errors import InvalidRequestData
from chalicelib.cachito_purl import enc
from infra.local.provision import Provisioned
from tests.cachito.git_server import GitServer
from tests.cachito.pip_fixtures import (
    REF,
    SETUP_PY,
    SIX_SHA,
    QuietHandler,
    cache,  # noqa: F401
    logs,  # noqa: F401
    make_context,
    make_sdist,
    web,  # noqa: F401
)

TOML_SHA = "b3bda1d108d5dd99f4a20d24d9c348e91c4db7ab1b749200bded2f839ccbe68f"
PYPROJECT = '[project]\nname = "demo-app"\nversion = "1.2.3"\n'
#: what building the sdists below needs, as a real project's requirements-build.txt lists it
BUILD_REQUIREMENTS = "setuptools==75.3.0\nwheel==0.45.1\nflit-core==3.9.0\n"


def test_sdists_from_pypi_with_their_hashes(
    tmp_path: Path, cache: S3DependencyCache, logs: list[str]
) -> None:
    files = {
        "pyproject.toml": PYPROJECT,
        "requirements.txt": f"# pinned\nsix==1.16.0 --hash=sha256:{SIX_SHA}\n",
        "requirements-build.txt": "toml===0.10.2\n",
    }
    result = pip.fetch(make_context(tmp_path, cache, logs, files), [{"path": "."}])

    [package] = result.packages
    assert {k: package[k] for k in ("name", "type", "version", "purl")} == {
        "name": "demo-app",
        "type": "pip",
        "version": "1.2.3",
        "purl": f"pkg:github/kiln-test/app@{REF}",
    }
    assert "path" not in package
    assert package["canonical_purl"].startswith("pkg:pypi/demo-app@1.2.3?vcs_url=git%2Bhttps")
    six, toml = package["dependencies"]
    assert six == {
        "name": "six",
        "type": "pip",
        "version": "1.16.0",
        "dev": False,
        "replaces": None,
        "purl": "pkg:pypi/six@1.16.0",
        "canonical_purl": "pkg:pypi/six@1.16.0",
        "sha256": SIX_SHA,
        "bundle_path": "deps/pip/six/six-1.16.0.tar.gz",
        "requires": [],
    }
    assert (toml["name"], toml["version"], toml["dev"], toml["sha256"]) == (
        "toml",
        "0.10.2",
        True,
        TOML_SHA,
    )
    deps = tmp_path / "deps"
    assert hashlib.sha256((deps / "pip/six/six-1.16.0.tar.gz").read_bytes()).hexdigest() == SIX_SHA
    index = (deps / "pip/index.html").read_text()
    assert f'href="six/six-1.16.0.tar.gz#sha256={SIX_SHA}"' in index
    assert f'href="toml/toml-0.10.2.tar.gz#sha256={TOML_SHA}"' in index
    assert result.environment_variables == {
        "PIP_FIND_LINKS": {"value": "deps/pip/index.html", "kind": "path"},
        "PIP_NO_INDEX": {"value": "true", "kind": "literal"},
    }
    assert result.configuration_files == []
    assert cache.fetched == 4  # two index answers, two sdists


def test_a_second_request_is_served_from_the_cache(
    tmp_path: Path, cache: S3DependencyCache, logs: list[str]
) -> None:
    files = {"requirements.txt": "six==1.16.0\ntoml==0.10.2\n"}
    first = pip.fetch(make_context(tmp_path / "one", cache, logs, files), [{"path": "."}])
    assert cache.fetched == 4
    cache.fetched, logs[:] = 0, []

    second = pip.fetch(make_context(tmp_path / "two", cache, logs, files), [{"path": "."}])

    assert cache.fetched == 0
    assert second.packages == first.packages
    assert sum("from the dependency cache" in line for line in logs) == 4
    assert not [line for line in logs if "fetched from its registry" in line]
    assert (tmp_path / "two/deps/pip/toml/toml-0.10.2.tar.gz").is_file()


def test_a_corrupt_cache_object_is_fetched_again(
    tmp_path: Path, aws: Provisioned, cache: S3DependencyCache, logs: list[str]
) -> None:
    files = {"requirements.txt": "six==1.16.0\n"}
    pip.fetch(make_context(tmp_path / "one", cache, logs, files), [{"path": "."}])
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=aws.bucket, Key=cache.blob_key(SIX_SHA), Body=b"not six")
    cache.fetched = 0

    result = pip.fetch(make_context(tmp_path / "two", cache, logs, files), [{"path": "."}])

    assert cache.fetched == 1
    assert any("dropping the corrupt cached copy" in line for line in logs)
    assert result.packages[0]["dependencies"][0]["sha256"] == SIX_SHA
    data = (tmp_path / "two/deps/pip/six/six-1.16.0.tar.gz").read_bytes()
    assert hashlib.sha256(data).hexdigest() == SIX_SHA


def test_url_and_git_dependencies(
    tmp_path: Path, cache: S3DependencyCache, logs: list[str], web: tuple[str, str]
) -> None:
    url, sha = web
    with GitServer(tmp_path) as git:
        git_url, commit = git.repo("gitdep", {"setup.py": SETUP_PY.format(name="gitdep")})
        files = {
            "sub/setup.py": "import setuptools\nNAME = 'sub-app'\n"
            "setuptools.setup(name=NAME, version='2.0')\n",
            "sub/requirements.txt": f"urldep @ {url}#cachito_hash=sha256:{sha}\n"
            f"-e git+{git_url}@{commit}#egg=gitdep\n",
        }
        ctx = make_context(tmp_path, cache, logs, files, allow_cidrs="127.0.0.0/8")
        result = pip.fetch(ctx, [{"path": "sub"}])

    [package] = result.packages
    assert (package["name"], package["version"], package["path"]) == ("sub-app", "2.0", "sub")
    assert package["purl"] == f"pkg:github/kiln-test/app@{REF}#sub"
    urldep, gitdep = package["dependencies"]
    assert urldep["version"] == f"{url}#cachito_hash=sha256:{sha}"
    assert (
        urldep["purl"]
        == f"pkg:generic/urldep?download_url={enc(urldep['version'])}&checksum=sha256:{sha}"
    )
    assert urldep["bundle_path"] == f"deps/pip/external-urldep/urldep-external-sha256-{sha}.tar.gz"
    assert urldep["sha256"] == sha
    host = git_url.split("/")[2]
    assert gitdep["version"] == f"git+{git_url}@{commit}"
    assert gitdep["purl"] == f"pkg:generic/gitdep?vcs_url={enc(f'{git_url}@{commit}')}"
    assert (
        gitdep["bundle_path"] == f"deps/pip/{host}/gitdep/gitdep-external-gitcommit-{commit}.tar.gz"
    )
    with tarfile.open(tmp_path / gitdep["bundle_path"]) as tar:
        assert "app/setup.py" in tar.getnames() and "app/.git/HEAD" in tar.getnames()
    assert result.environment_variables["KILN_PIP_DEPS_DIR"] == {
        "value": "deps/pip",
        "kind": "path",
    }
    [config] = result.configuration_files
    assert config["path"] == "app/sub/requirements.txt" and config["type"] == "base64"
    rewritten = base64.b64decode(config["content"]).decode().splitlines()
    deps_dir = "file://${KILN_PIP_DEPS_DIR}"
    assert rewritten == [
        f"urldep @ {deps_dir}/{urldep['bundle_path'][9:]}#cachito_hash=sha256:{sha}&sha256={sha}",
        f"gitdep @ {deps_dir}/{gitdep['bundle_path'][9:]}#sha256={gitdep['sha256']}",
    ]


def test_git_connects_only_to_the_addresses_the_guard_vetted(
    tmp_path: Path, cache: S3DependencyCache, logs: list[str]
) -> None:
    """A host name is resolved once and git pinned to those addresses (curl's --resolve)."""
    with GitServer(tmp_path) as git:
        git_url, commit = git.repo("gitdep", {"setup.py": SETUP_PY.format(name="gitdep")})
        named = git_url.replace("127.0.0.1", "localhost")
        line = f"gitdep @ git+{named}@{commit}\n"
        ctx = make_context(tmp_path, cache, logs, {"requirements.txt": line}, "127.0.0.0/8,::1")
        [package] = pip.fetch(ctx, [{"path": "."}]).packages
    assert package["dependencies"][0]["bundle_path"].startswith("deps/pip/localhost:")


def test_package_names_are_read_without_running_anything(
    tmp_path: Path, cache: S3DependencyCache, logs: list[str]
) -> None:
    files = {
        "cfg/setup.cfg": "[metadata]\nname = cfg-app\nversion = attr: cfgapp.__version__\n"
        "[options]\npackage_dir =\n    =src\n",
        "cfg/src/cfgapp/__init__.py": "__version__ = '3.1'\n",
        "cfg/setup.py": "raise SystemExit('setup.py must not run')\n",
        "bare/requirements.txt": "",
    }
    result = pip.fetch(
        make_context(tmp_path, cache, logs, files), [{"path": "cfg"}, {"path": "bare"}]
    )
    cfg, bare = result.packages
    assert (cfg["name"], cfg["version"]) == ("cfg-app", "3.1")
    assert (bare["name"], bare["version"], bare["dependencies"]) == ("app-bare", None, [])


def test_an_index_that_answers_html(
    tmp_path: Path, cache: S3DependencyCache, logs: list[str]
) -> None:
    """A PEP 503 index of the operator's: not yanked before yanked, .tar.gz before .zip."""
    pages = tmp_path / "index"
    (pages / "simple/urldep").mkdir(parents=True)
    (pages / "files").mkdir()
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("urldep-1.0/PKG-INFO", "Metadata-Version: 1.0\nName: urldep\n")
        archive.writestr("urldep-1.0/setup.py", SETUP_PY.format(name="urldep"))
    (pages / "files/urldep-1.0.zip").write_bytes(zipped.getvalue())
    (pages / "files/urldep-1.0.tar.gz").write_bytes(make_sdist("urldep"))
    zip_sha = hashlib.sha256(zipped.getvalue()).hexdigest()
    links = [
        '<a href="../../files/urldep-1.0.tar.gz" data-yanked="">urldep-1.0.tar.gz</a>',
        f'<a href="../../files/urldep-1.0.zip#sha256={zip_sha}">urldep-1.0.zip</a>',
        '<a href="../../files/urldep-1.0-py3-none-any.whl">urldep-1.0-py3-none-any.whl</a>',
        '<a href="../../files/Urldep-0.9.tar.gz">Urldep-0.9.tar.gz</a>',
    ]
    (pages / "simple/urldep/index.html").write_text(
        "<html><body>" + "".join(links) + "</body></html>"
    )
    handler = functools.partial(QuietHandler, directory=str(pages))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        index = f"http://127.0.0.1:{server.server_address[1]}"
        ctx = make_context(tmp_path / "ok", cache, logs, {"requirements.txt": "URLdep==1.0\n"})
        ctx.options["pip_index_url"] = index
        [package] = pip.fetch(ctx, [{"path": "."}]).packages
        for requirement, message in (
            ("urldep==2.0", "No sdists found for package urldep==2.0"),
            ("missing==1.0", f"The package missing is not in the package index {index}"),
        ):
            ctx = make_context(
                tmp_path / requirement, cache, logs, {"requirements.txt": requirement}
            )
            ctx.options["pip_index_url"] = index
            with pytest.raises(InvalidRequestData, match=message):
                pip.fetch(ctx, [{"path": "."}])
        server.shutdown()
    [dependency] = package["dependencies"]
    assert dependency["bundle_path"] == "deps/pip/urldep/urldep-1.0.zip"
    assert dependency["sha256"] == zip_sha
    assert dependency["canonical_purl"] == f"pkg:pypi/urldep@1.0?repository_url={index}/simple"
    assert (
        'href="urldep/urldep-1.0.zip#sha256=' in (tmp_path / "ok/deps/pip/index.html").read_text()
    )


def _network_blocked(command: list[str]) -> list[str]:
    """``command`` in a network namespace of its own when this machine allows one (root)."""
    if (
        shutil.which("unshare")
        and subprocess.run(["unshare", "--net", "true"], check=False).returncode == 0
    ):
        return ["unshare", "--net", *command]
    return command


@pytest.mark.slow
@pytest.mark.parametrize("which_pip", ["the venv's own (ensurepip)", "Kiln's current"])
def test_pip_installs_from_the_bundle_with_no_network(
    tmp_path: Path, cache: S3DependencyCache, logs: list[str], web: tuple[str, str], which_pip: str
) -> None:
    url, sha = web
    with GitServer(tmp_path) as git:
        git_url, commit = git.repo(
            "gitdep", {"setup.py": SETUP_PY.format(name="gitdep"), "gitdep.py": "VALUE = 2\n"}
        )
        files = {
            "pyproject.toml": PYPROJECT,
            # (no --hash here: with one, Cachito wants a hash on the git line too)
            "requirements.txt": f"six==1.16.0\nurldep @ {url}#cachito_hash=sha256:{sha} \\\n"
            f"    ; python_version >= '3'\ngitdep @ git+{git_url}@{commit}\n",
            "requirements-build.txt": BUILD_REQUIREMENTS,
        }
        bundle = tmp_path / "bundle"
        result = pip.fetch(make_context(bundle, cache, logs, files, "127.0.0.0/8"), [{"path": "."}])
    # the bundle archive, extracted somewhere else; then what atomic-reactor does with it
    with tarfile.open(tmp_path / "bundle.tar.gz", "w:gz") as tar:
        tar.add(bundle / "app", "app")
        tar.add(bundle / "deps", "deps")
    root = tmp_path / "remote-source"
    with tarfile.open(tmp_path / "bundle.tar.gz") as tar:
        tar.extractall(root, filter="data")
    for config in result.configuration_files:
        (root / config["path"]).write_bytes(base64.b64decode(config["content"]))
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "PIP_NO_CACHE_DIR": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",  # nothing there, and PIP_NO_INDEX anyway
        "https_proxy": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
    }
    for name, variable in result.environment_variables.items():
        env[name] = (
            str(root / variable["value"]) if variable["kind"] == "path" else variable["value"]
        )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = str(venv / "bin" / "python")
    pip_command = [python, "-m", "pip"]  # pip 23.2 here: its builds want `wheel` too
    if which_pip == "Kiln's current":
        pip_command = [sys.executable, "-m", "pip", "--python", python]

    done = subprocess.run(
        _network_blocked([*pip_command, "install", "-r", "requirements.txt"]),
        cwd=root / "app",
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "index.html" in done.stdout  # "Looking in links: .../deps/pip/index.html"
    check = "import six, urldep, gitdep; print(six.__version__, urldep.VALUE, gitdep.VALUE)"
    shown = subprocess.run(
        [python, "-c", check], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert shown.stdout.split() == ["1.16.0", "1", "2"]
