"""Cachito-form purls (chalicelib/cachito_purl.py) against every example and rule of
cachito-behaviour.md §9, which follow upstream Cachito's cachito/web/purl.py."""

from __future__ import annotations

import pytest

from chalicelib.cachito_purl import (
    download_purl,
    enc,
    file_purl,
    forge_purl,
    gem_purl,
    git_dependency_purl,
    golang_purl,
    npm_purl,
    pypi_name,
    pypi_purl,
    vcs_purl,
)

REF = "58c88e4952e95935c0dd72d4a24b0c44f2249f5b"
SHA256 = "0f5c0e3b4e2d8a8c1a33f0f8e5b1d9c7a6e4f2d0b8c6a4e2f0d8b6a4c2e0f8d6"


def test_enc_escapes_every_reserved_character() -> None:
    assert enc("git+https://h.example/a b@c#d?e=f&g") == (
        "git%2Bhttps%3A%2F%2Fh.example%2Fa%20b%40c%23d%3Fe%3Df%26g"
    )


@pytest.mark.parametrize(
    ("repo", "subpath", "purl"),
    [
        (
            "https://github.com/Example-Org/Web-App.git",
            None,
            f"pkg:github/example-org/web-app@{REF}",
        ),
        ("https://github.com/Example-Org/Web-App", ".", f"pkg:github/example-org/web-app@{REF}"),
        (
            "https://github.com/example/web-app/",
            "web/ui",
            f"pkg:github/example/web-app@{REF}#web/ui",
        ),
        ("https://GitHub.com/example/web-app", None, f"pkg:github/example/web-app@{REF}"),
        ("https://bitbucket.org/Team/Repo.git", None, f"pkg:bitbucket/team/repo@{REF}"),
        ("https://bitbucket.org/team/repo", "sub", f"pkg:bitbucket/team/repo@{REF}#sub"),
        ("git@github.com:Example/Web-App.git", None, f"pkg:github/example/web-app@{REF}"),
    ],
)
def test_top_level_package_on_a_known_host(repo: str, subpath: str | None, purl: str) -> None:
    assert vcs_purl("web-app", repo, REF, subpath) == purl


def test_top_level_package_on_another_host_is_generic_with_the_name_as_it_is() -> None:
    repo = "https://gitlab.example.com/group/sub/web-app.git"
    vcs_url = f"https%3A%2F%2Fgitlab.example.com%2Fgroup%2Fsub%2Fweb-app.git%40{REF}"
    assert vcs_purl("web-app", repo, REF) == f"pkg:generic/web-app?vcs_url={vcs_url}"
    assert vcs_purl("@example/ui", repo + "/", REF, "web/ui") == (
        f"pkg:generic/@example/ui?vcs_url={vcs_url}#web/ui"
    )


@pytest.mark.parametrize(
    ("name", "version", "purl"),
    [
        ("github.com/pkg/errors", "v0.8.1", "pkg:golang/github.com%2Fpkg%2Ferrors@v0.8.1"),
        (
            "golang.org/x/text/language",
            "v0.14.0",
            "pkg:golang/golang.org%2Fx%2Ftext%2Flanguage@v0.14.0",
        ),
        ("k8s.io/api", "v0.0.0-20240101-abcdef", "pkg:golang/k8s.io%2Fapi@v0.0.0-20240101-abcdef"),
        ("io/fs", None, "pkg:golang/io%2Ffs"),
        ("errors", None, "pkg:golang/errors"),
    ],
)
def test_go_modules_and_packages_encode_the_whole_name(
    name: str, version: str | None, purl: str
) -> None:
    assert golang_purl(name, version) == purl


def test_go_local_replace_is_the_parent_module_purl_with_the_relative_path() -> None:
    parent = golang_purl("gitlab.com/example/go-svc", "v1.2.0")
    assert f"{parent}#staging/lib" == "pkg:golang/gitlab.com%2Fexample%2Fgo-svc@v1.2.0#staging/lib"
    # an in-repo package takes its module's version
    assert golang_purl("gitlab.com/example/go-svc/internal/util", "v1.2.0") == (
        "pkg:golang/gitlab.com%2Fexample%2Fgo-svc%2Finternal%2Futil@v1.2.0"
    )


def test_npm_and_yarn_registry_dependencies() -> None:
    assert npm_purl("chai", "4.2.0") == "pkg:npm/chai@4.2.0"
    assert npm_purl("@scope/name", "1.0.0") == "pkg:npm/%40scope/name@1.0.0"


def test_npm_tarball_git_and_file_dependencies() -> None:
    url = "https://registry.example.com/left-pad/-/left-pad-1.3.0.tgz"
    assert download_purl("left-pad", url) == (
        "pkg:generic/left-pad?download_url="
        "https%3A%2F%2Fregistry.example.com%2Fleft-pad%2F-%2Fleft-pad-1.3.0.tgz"
    )
    assert download_purl("@scope/pad", "https://x.example/p.tgz") == (
        "pkg:generic/%40scope/pad?download_url=https%3A%2F%2Fx.example%2Fp.tgz"
    )
    git = "git+https://github.com/kevva/is-positive.git#97edff6f525f192a3f83cea1944765f769ae2678"
    assert git_dependency_purl("is-positive", git) == (
        "pkg:generic/is-positive?vcs_url=git%2Bhttps%3A%2F%2Fgithub.com%2Fkevva%2F"
        "is-positive.git%2397edff6f525f192a3f83cea1944765f769ae2678"
    )
    assert file_purl("local-lib", "../local-lib") == "pkg:generic/local-lib?file=..%2Flocal-lib"
    assert file_purl("@scope/lib", "packages/lib") == (
        "pkg:generic/%40scope/lib?file=packages%2Flib"
    )


def test_npm_forge_shorthand() -> None:
    assert forge_purl("github:ns/name#ref") == "pkg:github/ns/name@ref"
    assert forge_purl("github:Example/SemVer#v7.5.4") == "pkg:github/Example/SemVer@v7.5.4"
    assert forge_purl("gitlab:group/sub/name#abc123") == "pkg:gitlab/group/sub/name@abc123"
    with pytest.raises(ValueError, match="Could not convert version github:ns/name to purl"):
        forge_purl("github:ns/name")


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("aiowsgi", "aiowsgi"),
        ("Flask_Login", "flask-login"),
        ("zope.interface", "zope.interface"),
        ("ruamel.yaml.clib", "ruamel.yaml.clib"),
        ("A__b--c  d", "a-b-c-d"),
    ],
)
def test_pip_index_dependencies_lower_case_and_dash_runs(name: str, normalized: str) -> None:
    assert pypi_name(name) == normalized
    assert pypi_purl(name, "1.0") == f"pkg:pypi/{normalized}@1.0"


def test_pip_git_dependencies_follow_the_host_rules() -> None:
    assert vcs_purl("appr", "git+https://github.com/quay/appr.git", REF) == (
        f"pkg:github/quay/appr@{REF}"
    )
    # on another host: the name as it is, the URL without "git+"
    assert vcs_purl("Foo_Bar", "git+https://gitlab.com/ns/foo.git", REF) == (
        f"pkg:generic/Foo_Bar?vcs_url=https%3A%2F%2Fgitlab.com%2Fns%2Ffoo.git%40{REF}"
    )


def test_pip_url_dependency_gets_its_hash_fragment_and_checksum() -> None:
    url = "https://github.com/quay/appr/archive/58c88e49.tar.gz#egg=cnr_server"
    assert download_purl("cnr_server", url, SHA256) == (
        "pkg:generic/cnr-server?download_url=https%3A%2F%2Fgithub.com%2Fquay%2Fappr%2Farchive"
        f"%2F58c88e49.tar.gz%23egg%3Dcnr_server%26cachito_hash%3Dsha256%3A{SHA256}"
        f"&checksum=sha256:{SHA256}"
    )
    plain = "https://files.example.com/pkg-1.0.tar.gz"
    assert download_purl("Pkg", plain, SHA256) == (
        "pkg:generic/pkg?download_url=https%3A%2F%2Ffiles.example.com%2Fpkg-1.0.tar.gz"
        f"%23cachito_hash%3Dsha256%3A{SHA256}&checksum=sha256:{SHA256}"
    )
    written = f"{plain}#cachito_hash=sha256:{SHA256}"
    assert download_purl("pkg", written, SHA256) == download_purl("Pkg", plain, SHA256)


def test_rubygems() -> None:
    assert gem_purl("zeitwerk", "2.6.0") == "pkg:gem/zeitwerk@2.6.0"
    # a PATH gem: the repository's purl and the gem's path in it
    repo = "https://github.com/Example/Rails-App.git"
    assert vcs_purl("rails-app", repo, REF, "vendor/gems/tools") == (
        f"pkg:github/example/rails-app@{REF}#vendor/gems/tools"
    )
    # a GIT gem: the host rules
    assert vcs_purl("rails", "https://github.com/rails/rails.git", REF) == (
        f"pkg:github/rails/rails@{REF}"
    )


def test_git_submodules_follow_the_host_rules() -> None:
    assert vcs_purl("third_party/proto", "https://github.com/Example/Proto-Defs.git", REF) == (
        f"pkg:github/example/proto-defs@{REF}"
    )
    assert vcs_purl("lib", "https://git.example.com/org/lib.git", REF) == (
        f"pkg:generic/lib?vcs_url=https%3A%2F%2Fgit.example.com%2Forg%2Flib.git%40{REF}"
    )
