"""The pip package manager's refusals and their error messages, as upstream Cachito words them:
requirements that are not pinned or hashed, unsupported URLs, VCS schemes and options, loopback
URL and git dependencies outside the allow-list, a commit the git repository lacks, missing or
escaping requirements files, and the per-request limits on dependencies and bytes."""

# ruff: noqa: F811 - the fixtures tests/cachito/pip_fixtures.py holds are imported, then named

from __future__ import annotations

from pathlib import Path

import pytest

from builders.cachito import pip
from builders.cachito.context import Limits
from builders.cachito.dep_cache import S3DependencyCache
from builders.cachito.errors import (
    FileAccessError,
    InvalidChecksum,
    InvalidRequestData,
    UnsupportedFeature,
    ValidationError,
)
from tests.cachito.git_server import GitServer
from tests.cachito.pip_fixtures import (
    SETUP_PY,
    SIX_SHA,
    cache,  # noqa: F401
    logs,  # noqa: F401
    make_context,
    web,  # noqa: F401
)


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
