"""What the pip manager tests share (tests/cachito/test_pip.py, test_pip_refusals.py): the
request's context (an application tree written from a dict of files, the S3 dependency cache on
moto with its log), a minimal sdist builder, and a loopback web server with an sdist of
``urldep`` for URL dependencies."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from builders.cachito.context import FetchContext, Limits
from builders.cachito.dep_cache import S3DependencyCache
from infra.local.provision import Provisioned

REPO = "https://github.com/Kiln-Test/App.git"
REF = "a" * 40
SIX_SHA = "1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926"
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
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        yield (
            f"http://127.0.0.1:{server.server_address[1]}/urldep-1.0.tar.gz",
            hashlib.sha256(data).hexdigest(),
        )
        server.shutdown()
