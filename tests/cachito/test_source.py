"""Fetching a Cachito request's source (builders/cachito/source.py) from git repositories
served over smart HTTP on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest

from builders.cachito.dep_cache import S3DependencyCache
from builders.cachito.errors import (
    InvalidRequestData,
    RepositoryAccessError,
    ValidationError,
)
from builders.cachito.source import (
    FetchedSource,
    SourceSpec,
    fetch_source,
    finish_tree,
    package_dir,
    package_path,
)
from chalicelib.adapters.web_fetch import AllowList
from infra.local.provision import Provisioned
from tests.cachito.git_server import GitServer

LOOPBACK = AllowList.parse("127.0.0.0/8")
FILES = {"README.md": "hello\n", "src/app.py": "print('hi')\n"}


@pytest.fixture
def git(tmp_path: Path) -> Iterator[GitServer]:
    with GitServer(tmp_path) as server:
        yield server


class Fetcher:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.lines: list[str] = []
        self.runs = 0

    def __call__(
        self, url: str, ref: str, cache: Any = None, **spec: Any
    ) -> tuple[Path, FetchedSource]:
        self.runs += 1
        app = self.tmp_path / f"run{self.runs}" / "app"
        spec.setdefault("allow", LOOPBACK)
        source = SourceSpec(repo=url, ref=ref, **spec)
        fetched = fetch_source(
            source, app, self.tmp_path / f"run{self.runs}" / "scratch", cache, self.lines.append
        )
        finish_tree(app, fetched, source.flags)  # as the run does once the managers ran
        return app, fetched


@pytest.fixture
def fetch(tmp_path: Path) -> Fetcher:
    return Fetcher(tmp_path)


def files_in(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def test_the_repository_at_the_commit_without_git_dir(git: GitServer, fetch: Fetcher) -> None:
    url, first = git.repo("app", FILES)
    git.repo("app", {"README.md": "changed\n"})
    app, fetched = fetch(url, first)
    assert files_in(app) == FILES
    assert not (app / ".git").exists()
    assert fetched.packages == [] and fetched.from_cache is False
    assert fetched.commit_time == 1704067200  # GIT_COMMITTER_DATE of the test server


def test_an_unknown_commit_is_invalid_request_data(git: GitServer, fetch: Fetcher) -> None:
    url, _ = git.repo("app", FILES)
    bad = "baaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaad"
    with pytest.raises(InvalidRequestData) as caught:
        fetch(url, bad)
    assert caught.value.message == (
        "Failed on checking out the Git repository. Please verify the supplied reference "
        f'of "{bad}" is valid.'
    )
    assert str(caught.value).startswith("InvalidRequestData: ")


def test_a_ref_that_is_no_commit_hash_is_refused(git: GitServer, fetch: Fetcher) -> None:
    url, _ = git.repo("app", FILES)
    with pytest.raises(InvalidRequestData, match='reference of "main" is valid'):
        fetch(url, "main")


def test_loopback_is_refused_without_an_allow_list(git: GitServer, fetch: Fetcher) -> None:
    url, commit = git.repo("app", FILES)
    with pytest.raises(ValidationError, match="loopback and not in the allow-list"):
        fetch(url, commit, allow=AllowList())


@pytest.mark.parametrize(
    "url",
    ["file:///srv/repo.git", "ssh://git@example.com/repo.git", "/srv/repo.git", "ext::sh -c x"],
)
def test_only_http_and_https_repositories(fetch: Fetcher, url: str) -> None:
    with pytest.raises(ValidationError, match="only http and https are allowed"):
        fetch(url, "a" * 40)


def test_credentials_in_the_url_are_refused(git: GitServer, fetch: Fetcher) -> None:
    url, commit = git.repo("app", FILES)
    with pytest.raises(ValidationError, match="credentials in the URL are not accepted"):
        fetch(url.replace("http://", "http://user:secret@"), commit)


def test_a_host_name_outside_ascii_is_refused(fetch: Fetcher) -> None:
    with pytest.raises(ValidationError, match="spell its host in ASCII"):
        fetch("https://bücher.example/repo.git", "a" * 40)


def test_an_unreachable_repository_is_a_repository_access_error(
    git: GitServer, fetch: Fetcher
) -> None:
    _, commit = git.repo("app", FILES)
    with pytest.raises(RepositoryAccessError, match="^RepositoryAccessError: Failed cloning"):
        fetch(git.url("missing"), commit)


def test_a_host_name_is_pinned_to_its_checked_address(git: GitServer, fetch: Fetcher) -> None:
    url, commit = git.repo("app", FILES)
    app, _ = fetch(url.replace("127.0.0.1", "localhost"), commit)
    assert files_in(app) == FILES


def test_submodules_are_checked_out_and_recorded(git: GitServer, fetch: Fetcher) -> None:
    inner_url, inner = git.repo("inner", {"inner.txt": "deep\n"})
    lib_url, lib = git.repo(
        "lib", {"lib.txt": "library\n"}, submodules={"vendor/in": (inner_url, inner)}
    )
    url, commit = git.repo("app", FILES, submodules={"libs/lib": (lib_url, lib)})
    app, fetched = fetch(url, commit, submodules=True)
    assert (app / "libs/lib/lib.txt").read_text() == "library\n"
    assert (app / "libs/lib/vendor/in/inner.txt").read_text() == "deep\n"
    assert not (app / ".git").exists() and not (app / "libs/lib/.git").exists()
    assert not (app / "libs/lib/vendor/in/.git").exists()
    lib_package, inner_package = fetched.packages
    assert lib_package == {
        "name": "libs/lib",
        "type": "git-submodule",
        "version": f"{lib_url}#{lib}",
        "path": "libs/lib",
        "purl": f"pkg:generic/libs/lib?vcs_url={quote(lib_url, safe='')}%40{lib}",
        "canonical_purl": f"pkg:generic/lib@{lib}?vcs_url=git%2B{lib_url}%40{lib}",
        "dependencies": [],
    }
    assert inner_package["path"] == "libs/lib/vendor/in"
    assert inner_package["version"] == f"{inner_url}#{inner}"


def test_submodules_are_left_out_without_the_git_submodule_manager(
    git: GitServer, fetch: Fetcher
) -> None:
    lib_url, lib = git.repo("lib", {"lib.txt": "library\n"})
    url, commit = git.repo("app", FILES, submodules={"lib": (lib_url, lib)})
    app, fetched = fetch(url, commit)
    assert fetched.packages == [] and list((app / "lib").iterdir()) == []


def test_a_submodule_url_passes_the_guard(git: GitServer, fetch: Fetcher) -> None:
    local_url, local = git.repo("local", {"x": "y\n"})
    bare = str(git.root / "local.git")  # the submodule is recorded by its local path
    url, commit = git.repo("app", FILES, submodules={"local": (bare, local)})
    assert local_url != bare
    refused = (
        r"^ValidationError: The submodule 'local' '/.*/local\.git' cannot be fetched: only http"
    )
    with pytest.raises(ValidationError, match=refused):
        fetch(url, commit, submodules=True)


def test_include_git_dir_keeps_exactly_app_git(git: GitServer, fetch: Fetcher) -> None:
    lib_url, lib = git.repo("lib", {"lib.txt": "library\n"})
    url, first = git.repo("app", FILES, submodules={"lib": (lib_url, lib)})
    git.repo("app", {"later": "x\n"})
    app, _ = fetch(url, first, submodules=True, flags=frozenset({"include-git-dir"}))
    assert (app / ".git").is_dir()
    head = _git(app, "rev-parse", "HEAD")
    assert head == first
    assert _git(app / "lib", "rev-parse", "HEAD") == lib
    assert _git(app, "status", "--porcelain") == ""
    assert _git(app, "remote", "get-url", "origin") == url


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_symlink_leaving_the_tree_fails_the_request(git: GitServer, fetch: Fetcher) -> None:
    url, commit = git.repo(
        "app", FILES, symlinks={"inside": "src/app.py", "sub/escape": "../../outside"}
    )
    with pytest.raises(ValidationError) as caught:
        fetch(url, commit)
    assert caught.value.message == "The destination of 'sub/escape' is outside of cloned repository"


def test_remove_unsafe_symlinks_deletes_them(git: GitServer, fetch: Fetcher) -> None:
    url, commit = git.repo("app", FILES, symlinks={"inside": "src/app.py", "root": "/"})
    app, _ = fetch(url, commit, flags=frozenset({"remove-unsafe-symlinks"}))
    assert not (app / "root").is_symlink()
    assert os.readlink(app / "inside") == "src/app.py"
    assert any("'root' is outside of cloned repository: removed" in line for line in fetch.lines)


def test_the_source_cache_fetches_a_commit_once(
    git: GitServer, fetch: Fetcher, aws: Provisioned
) -> None:
    lib_url, lib = git.repo("lib", {"lib.txt": "library\n"})
    url, commit = git.repo(
        "app", FILES, submodules={"lib": (lib_url, lib)}, symlinks={"etc": "/etc", "in": "src"}
    )
    cache = S3DependencyCache(boto3.client("s3"), aws.bucket, "cachito-cache/", fetch.lines.append)
    with pytest.raises(ValidationError, match="'etc' is outside of cloned repository"):
        fetch(url, commit, cache, submodules=True)  # cached as committed, then refused
    for name in ("app", "lib"):  # gone from the server: only the cache has it now
        shutil.rmtree(git.root / f"{name}.git")
    unsafe = frozenset({"remove-unsafe-symlinks"})
    app, cached = fetch(url, commit, cache, submodules=True, flags=unsafe)
    assert cached.from_cache is True
    assert files_in(app) == {
        **FILES,
        ".gitmodules": files_in(app)[".gitmodules"],
        "lib/lib.txt": "library\n",
    }
    assert not (app / "etc").is_symlink() and os.readlink(app / "in") == "src"
    assert [p["version"] for p in cached.packages] == [f"{lib_url}#{lib}"]
    assert any("from the source cache" in line for line in fetch.lines)
    with pytest.raises(RepositoryAccessError):  # without submodules: another cache entry
        fetch(url, commit, cache)


def test_a_repository_over_the_size_limit_is_refused(git: GitServer, fetch: Fetcher) -> None:
    url, commit = git.repo("big", {"blob.bin": os.urandom(300_000)})
    with pytest.raises(ValidationError, match="larger than 100000 bytes"):
        fetch(url, commit, max_bytes=100_000)


@pytest.mark.parametrize("path", ["..", "../x", "a/../../b", "/etc", "/"])
def test_package_paths_outside_the_repository_are_refused(path: str) -> None:
    with pytest.raises(ValidationError) as caught:
        package_path("npm", path)
    assert caught.value.message == (
        'The "path" values in the "packages.npm" value must be to a relative path in the '
        "source repository"
    )


@pytest.mark.parametrize(
    ("path", "normalized"),
    [(None, "."), (".", "."), ("./", "."), ("a/./b/", "a/b"), ("a/../b", "b")],
)
def test_package_paths_are_normalized(path: str | None, normalized: str) -> None:
    assert package_path("pip", path) == normalized


def test_a_package_path_through_a_symlink_out_of_the_tree_is_refused(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "inside").mkdir(parents=True)
    (app / "out").symlink_to(tmp_path)
    assert package_dir(app, "pip", "inside") == (app / "inside").resolve()
    with pytest.raises(ValidationError, match="packages.pip"):
        package_dir(app, "pip", "out")
