"""The pip package manager of Cachito requests: real PyPI downloads, URL dependencies from a
loopback web server and git dependencies from a loopback git server, the S3 dependency cache
(in-process moto), upstream's refusals, and a bundle that `pip install` builds from with no
network."""

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
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from builders.cachito import pip
from builders.cachito.context import FetchContext, Limits
from builders.cachito.dep_cache import S3DependencyCache
from builders.cachito.errors import (
    FileAccessError,
    InvalidChecksum,
    InvalidRequestData,
    UnsupportedFeature,
    ValidationError,
)
from chalicelib.cachito_purl import enc
from infra.local.provision import Provisioned
from tests.cachito.git_server import GitServer

REPO = "https://github.com/Kiln-Test/App.git"
REF = "a" * 40
SIX_SHA = "1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926"
TOML_SHA = "b3bda1d108d5dd99f4a20d24d9c348e91c4db7ab1b749200bded2f839ccbe68f"
PYPROJECT = '[project]\nname = "demo-app"\nversion = "1.2.3"\n'
#: what building the sdists below needs, as a real project's requirements-build.txt lists it
BUILD_REQUIREMENTS = "setuptools==75.3.0\nwheel==0.45.1\nflit-core==3.9.0\n"
SETUP_PY = (
    "from setuptools import setup\nsetup(name={name!r}, version='1.0', py_modules=[{name!r}])\n"
)


@pytest.fixture
def logs() -> list[str]:
    return []


@pytest.fixture
def cache(aws: Provisioned, logs: list[str]) -> S3DependencyCache:
    return S3DependencyCache(
        boto3.client("s3", region_name="us-east-1"), aws.bucket, log=logs.append
    )


def make_context(
    root: Path,
    cache: S3DependencyCache,
    logs: list[str],
    files: dict[str, str],
    allow_cidrs: str = "",
    limits: Limits = Limits(),
) -> FetchContext:
    app = root / "app"
    for path, content in files.items():
        (app / path).parent.mkdir(parents=True, exist_ok=True)
        (app / path).write_text(content)
    app.mkdir(parents=True, exist_ok=True)
    (root / "deps").mkdir()
    return FetchContext(
        app_dir=app,
        deps_dir=root / "deps",
        repo=REPO,
        ref=REF,
        flags=frozenset(),
        dependency_replacements=[],
        cache=cache,
        log=logs.append,
        step=logs.append,
        check_interrupted=lambda: None,
        limits=limits,
        options={"pip_index_url": "https://pypi.org", "allow_cidrs": allow_cidrs},
        work_dir=root / "work",
    )


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def make_sdist(name: str) -> bytes:
    """A minimal sdist of ``name`` 1.0 (setup.py, PKG-INFO, one module)."""
    members = {
        f"{name}-1.0/setup.py": SETUP_PY.format(name=name),
        f"{name}-1.0/PKG-INFO": f"Metadata-Version: 1.0\nName: {name}\nVersion: 1.0\n",
        f"{name}-1.0/{name}.py": "VALUE = 1\n",
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A loopback web server with urldep-1.0.tar.gz: (its URL, its sha256)."""
    root = tmp_path / "web"
    root.mkdir()
    data = make_sdist("urldep")
    (root / "urldep-1.0.tar.gz").write_bytes(data)
    handler = functools.partial(QuietHandler, directory=str(root))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield (
            f"http://127.0.0.1:{server.server_address[1]}/urldep-1.0.tar.gz",
            hashlib.sha256(data).hexdigest(),
        )
        server.shutdown()


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


@pytest.mark.parametrize(
    ("requirements", "error", "message"),
    [
        (
            "requests>=2\n",
            ValidationError,
            "Requirement must be pinned to an exact version: requests>=2",
        ),
        ("flask\n", ValidationError, "Requirement must be pinned to an exact version: flask"),
        (
            "six==1.16.0 --hash=sha256:" + "0" * 64 + "\n",
            InvalidChecksum,
            "Failed to verify checksum of six-1.16.0.tar.gz against any of the provided hashes",
        ),
        (
            "toml @ https://example.com/toml-0.10.2.tar.gz\n",
            ValidationError,
            "URL requirement must specify exactly one hash, but specifies 0: "
            "toml @ https://example.com/toml-0.10.2.tar.gz. Use the --hash option",
        ),
        (
            "x @ https://example.com/x-1.0-py3-none-any.whl#cachito_hash=sha256:00\n",
            ValidationError,
            "URL for requirement does not contain any recognized file extension",
        ),
        (
            "git+https://github.com/quay/appr@main#egg=appr\n",
            ValidationError,
            "No git ref in appr @ git+https://github.com/quay/appr@main#egg=appr "
            "(expected 40 hexadecimal characters)",
        ),
        ("hg+https://x.org/y@" + "1" * 40 + "#egg=y\n", ValidationError, "Unsupported VCS for y @"),
        ("git+ssh://git@x.org/y@" + "1" * 40 + "#egg=y\n", UnsupportedFeature, "Only git+https"),
        (
            "https://example.com/y-1.tar.gz#cachito_hash=sha256:00\n",
            ValidationError,
            "Egg name could not",
        ),
        ("-e .\n", ValidationError, "Direct references with 'file' scheme are not supported"),
        (
            "--index-url https://x.org/simple\nsix==1.16.0\n",
            ValidationError,
            "Cachito does not support the following options: --index-url",
        ),
        ("--bogus\n", ValidationError, "Unknown requirements file option '--bogus'"),
        (
            "six==1.16.0 --hash=sha256:" + SIX_SHA + "\ntoml==0.10.2\n",
            ValidationError,
            "Hash is required, dependency does not specify any: toml==0.10.2",
        ),
    ],
)
def test_requirements_upstream_refuses(
    tmp_path: Path,
    cache: S3DependencyCache,
    logs: list[str],
    requirements: str,
    error: type[Exception],
    message: str,
) -> None:
    ctx = make_context(tmp_path, cache, logs, {"requirements.txt": requirements})
    with pytest.raises(error) as caught:
        pip.fetch(ctx, [{"path": "."}])
    assert message in str(caught.value)


def test_loopback_addresses_need_the_allow_list(
    tmp_path: Path, cache: S3DependencyCache, logs: list[str], web: tuple[str, str]
) -> None:
    url, sha = web
    with GitServer(tmp_path) as git:
        git_url, commit = git.repo("gitdep", {"setup.py": SETUP_PY.format(name="gitdep")})
        for line in (
            f"urldep @ {url}#cachito_hash=sha256:{sha}",
            f"gitdep @ git+{git_url}@{commit}",
        ):
            ctx = make_context(tmp_path / line[:3], cache, logs, {"requirements.txt": line + "\n"})
            with pytest.raises(ValidationError, match="loopback and not in the allow-list"):
                pip.fetch(ctx, [{"path": "."}])
    assert cache.fetched == 0


def test_a_commit_the_git_repository_lacks(
    tmp_path: Path, cache: S3DependencyCache, logs: list[str]
) -> None:
    with GitServer(tmp_path) as git:
        git_url, _commit = git.repo("gitdep", {"setup.py": SETUP_PY.format(name="gitdep")})
        line = f"gitdep @ git+{git_url}@{'0' * 40}\n"
        ctx = make_context(tmp_path, cache, logs, {"requirements.txt": line}, "127.0.0.0/8")
        with pytest.raises(InvalidRequestData, match=f"The commit {'0' * 40} is not in"):
            pip.fetch(ctx, [{"path": "."}])


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


def test_a_missing_requirements_file(
    tmp_path: Path, cache: S3DependencyCache, logs: list[str]
) -> None:
    ctx = make_context(tmp_path, cache, logs, {"sub/requirements.txt": ""})
    with pytest.raises(
        FileAccessError, match="Following requirement file has an invalid path: sub/other.txt"
    ):
        pip.fetch(ctx, [{"path": "sub", "requirements_files": ["other.txt"]}])
    with pytest.raises(ValidationError, match="must be a relative path"):
        pip.fetch(ctx, [{"path": "sub", "requirements_files": ["../../etc/passwd"]}])
    (ctx.app_dir / "sub/outside.txt").symlink_to("/etc/hostname")
    with pytest.raises(ValidationError, match="sub/outside.txt leads outside of the source"):
        pip.fetch(ctx, [{"path": "sub", "requirements_files": ["outside.txt"]}])


def test_the_limits_bound_a_request(
    tmp_path: Path, cache: S3DependencyCache, logs: list[str]
) -> None:
    files = {"requirements.txt": "six==1.16.0\ntoml==0.10.2\n"}
    ctx = make_context(tmp_path / "count", cache, logs, files, limits=Limits(max_dependencies=1))
    with pytest.raises(ValidationError, match="limit of 1 dependencies per request"):
        pip.fetch(ctx, [{"path": "."}])
    ctx = make_context(tmp_path / "bytes", cache, logs, files, limits=Limits(max_bytes=40_000))
    with pytest.raises(ValidationError, match="limit of 40000 bytes per request"):
        pip.fetch(ctx, [{"path": "."}])


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
        threading.Thread(target=server.serve_forever, daemon=True).start()
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
