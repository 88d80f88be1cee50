"""The gomod package manager (builders/cachito/gomod.py) with the real Go toolchain, against a
module proxy in a directory (tests/cachito/go_proxy.py) and the dependency cache in moto's S3:
records and purls, the bundle's module cache and an offline ``go build`` from the bundle alone,
a second request served from the cache, two modules of one repository, versions from the
repository's tags and pseudo-versions, GOPROXY lists, and the refusals (missing go.mod files, a
module missing from the proxy, the byte limit, a go.mod needing a newer toolchain). The flags
and dependency replacements are in test_gomod_flags.py."""

# ruff: noqa: F811 - the fixtures tests/cachito/gomod_fixtures.py holds are imported, then named

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from builders.cachito import gomod
from builders.cachito.context import Limits
from builders.cachito.errors import GoModError, InvalidRepoStructure, ValidationError
from builders.cachito.gomod_proxy import parse_goproxy, unescape
from builders.cachito.gomod_version import module_version
from infra.local.provision import Provisioned
from tests.cachito.git_server import git
from tests.cachito.go_proxy import GoProxy, go_mod_text
from tests.cachito.gomod_fixtures import (
    APP,
    DOWNLOADS,
    GREET,
    SHOUT,
    Request,
    by_name,
    offline_build,
    proxy,  # noqa: F401
    write_app,
)


def test_modules_packages_purls_and_bundle(tmp_path: Path, aws: Provisioned, proxy: GoProxy):
    write_app(tmp_path / "req" / "app", proxy)
    request = Request(tmp_path / "req", aws, proxy, flags=("cgo-disable",))

    result = request.fetch()

    version = "v0.0.0-00010101000000-0123456789ab"  # no git metadata: Go's zero time
    module = by_name(result.packages, APP, "gomod")
    assert module["version"] == version and "path" not in module
    assert module["purl"] == f"pkg:golang/example.com%2Fapp@{version}"
    assert module["canonical_purl"] == f"pkg:golang/example.com/app@{version}"
    deps = {d["name"]: d for d in module["dependencies"]}
    assert set(deps) == {GREET, SHOUT}
    shout = deps[SHOUT]
    assert shout["version"] == "v1.1.0" and shout["type"] == "gomod"
    assert shout["purl"] == "pkg:golang/example.com%2FUpper%2Fshout@v1.1.0"
    assert shout["canonical_purl"] == "pkg:golang/example.com/Upper/shout@v1.1.0"
    assert shout["replaces"] is None and "dev" not in shout
    assert shout["bundle_path"] == f"{DOWNLOADS}/example.com/!upper/shout/@v/v1.1.0.zip"
    assert shout["requires"] == ["pkg:golang/example.com/greet@v1.0.0"]
    assert deps[GREET]["requires"] == []
    bundled_zip = tmp_path / "req" / shout["bundle_path"]
    assert shout["sha256"] == gomod.file_sha256(bundled_zip)
    for suffix in ("info", "mod", "zip", "ziphash"):
        assert (tmp_path / "req" / DOWNLOADS / f"example.com/greet/@v/v1.0.0.{suffix}").is_file()
    assert not list((tmp_path / "req" / DOWNLOADS).rglob("*.lock"))

    package = by_name(result.packages, APP, "go-package")
    assert package["module"] == APP and package["version"] == version
    assert package["purl"] == f"pkg:golang/example.com%2Fapp@{version}"
    imported = {d["name"]: d for d in package["dependencies"]}
    assert imported[SHOUT]["version"] == "v1.1.0"
    assert imported[SHOUT]["purl"] == "pkg:golang/example.com%2FUpper%2Fshout@v1.1.0"
    assert "pkg:golang/example.com/greet@v1.0.0" in imported[SHOUT]["requires"]
    assert imported["fmt"]["version"] is None and imported["fmt"]["purl"] == "pkg:golang/fmt"
    assert imported["io/fs"]["purl"] == "pkg:golang/io%2Ffs"
    assert imported["fmt"]["bundle_path"] is None and imported["fmt"]["type"] == "go-package"

    assert result.environment_variables == {
        "GOCACHE": {"value": "deps/gomod", "kind": "path"},
        "GOPATH": {"value": "deps/gomod", "kind": "path"},
        "GOMODCACHE": {"value": "deps/gomod/pkg/mod", "kind": "path"},
        "GOSUMDB": {"value": "off", "kind": "literal"},
        "GOFLAGS": {"value": "-mod=mod", "kind": "literal"},
        "GOPROXY": {"value": "off", "kind": "literal"},
    }
    assert result.configuration_files == []
    assert not (request.ctx.work_dir / "gomod").exists()
    # every module file came through the dependency cache, from the registry this first time
    assert request.cache.fetched == 6 and request.cache.hits == 0

    shutil.rmtree(proxy.root)  # nothing left to fetch from
    assert offline_build(tmp_path / "req", result, tmp_path) == "HELLO"


def test_a_second_request_downloads_nothing(tmp_path: Path, aws: Provisioned, proxy: GoProxy):
    write_app(tmp_path / "first" / "app", proxy)
    first = Request(tmp_path / "first", aws, proxy).fetch()
    shutil.rmtree(proxy.root)  # the registry is gone: only the cache can answer
    write_app(tmp_path / "second" / "app", proxy)
    request = Request(tmp_path / "second", aws, proxy)

    second = request.fetch()

    assert request.cache.fetched == 0 and request.cache.hits == 6
    assert second.packages == first.packages
    logged = "\n".join(request.logs)
    assert "gomod:example.com/Upper/shout@v1.1.0:v1.1.0.zip from the dependency cache" in logged
    assert (tmp_path / "second" / DOWNLOADS / "example.com/!upper/shout/@v/v1.1.0.zip").is_file()


def test_missing_go_mod_files(tmp_path: Path, aws: Provisioned, proxy: GoProxy):
    (tmp_path / "req" / "app" / "a").mkdir(parents=True)
    (tmp_path / "req" / "app" / "b").mkdir()
    request = Request(tmp_path / "req", aws, proxy)

    with pytest.raises(InvalidRepoStructure) as one:
        request.fetch()
    with pytest.raises(InvalidRepoStructure) as two:
        request.fetch([{"path": "a"}, {"path": "b/"}])

    assert one.value.message == "The go.mod file must be present for the gomod package manager"
    assert two.value.message == (
        "The a/go.mod; b/go.mod files must be present for the gomod package manager"
    )


def test_a_module_missing_from_the_proxy(tmp_path: Path, aws: Provisioned, proxy: GoProxy):
    write_app(tmp_path / "req" / "app", proxy)
    proxy.remove(GREET, "v1.0.0")
    request = Request(tmp_path / "req", aws, proxy)

    with pytest.raises(GoModError) as failure:
        request.fetch()

    message = failure.value.message
    assert message.startswith("Go execution failed: `go mod download -json` failed with rc=1")
    assert "example.com/greet@v1.0.0" in message and "none of the module proxies" in message
    assert "127.0.0.1" not in message  # go talked to Kiln's proxy; the message says GOPROXY
    assert not (request.ctx.work_dir / "gomod").exists()


def test_the_byte_limit(tmp_path: Path, aws: Provisioned, proxy: GoProxy):
    write_app(tmp_path / "req" / "app", proxy)
    request = Request(tmp_path / "req", aws, proxy)
    request.ctx.limits = Limits(max_bytes=300)

    with pytest.raises(ValidationError, match="exceed the limit of 300 bytes"):
        request.fetch()


def test_the_version_comes_from_the_repository_tags(
    tmp_path: Path, aws: Provisioned, proxy: GoProxy
):
    app = tmp_path / "req" / "app"
    write_app(app, proxy)
    git(app, "init", "-q", "-b", "main")
    git(app, "add", "-A")
    git(app, "commit", "-q", "-m", "first")
    git(app, "tag", "v1.2.3")
    request = Request(tmp_path / "req", aws, proxy)
    request.ctx.ref = git(app, "rev-parse", "HEAD")

    result = request.fetch()

    assert by_name(result.packages, APP, "gomod")["version"] == "v1.2.3"
    assert by_name(result.packages, APP, "go-package")["purl"] == (
        "pkg:golang/example.com%2Fapp@v1.2.3"
    )


def test_pseudo_versions(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    git(repo, "tag", "v1.2.3")
    git(repo, "tag", "sub/v0.4.0-rc.1")
    git(repo, "tag", "v2.0.0")
    git(repo, "commit", "-q", "--allow-empty", "-m", "two")
    head = git(repo, "rev-parse", "HEAD")
    stamp = "20240101000000"  # tests/cachito/git_server.py's fixed commit date

    assert module_version(repo, head, APP) == f"v1.2.4-0.{stamp}-{head[:12]}"
    assert module_version(repo, head, f"{APP}/v2") == f"v2.0.1-0.{stamp}-{head[:12]}"
    assert module_version(repo, head, f"{APP}/v3") == f"v3.0.0-{stamp}-{head[:12]}"
    assert module_version(repo, head, "example.com/sub", "sub") == (
        f"v0.4.0-rc.1.0.{stamp}-{head[:12]}"
    )
    git(repo, "tag", "v1.3.0")
    assert module_version(repo, head, APP) == "v1.3.0"
    assert module_version(tmp_path, head, APP) == f"v0.0.0-00010101000000-{head[:12]}"


def test_goproxy_lists(monkeypatch: pytest.MonkeyPatch):
    upstreams, direct = parse_goproxy("https://kiln:s3cret@athens.example/|file:///srv/go,direct")
    assert direct and [u.url for u in upstreams] == ["https://athens.example", "file:///srv/go"]
    assert upstreams[0].authorization == "Basic a2lsbjpzM2NyZXQ="
    assert upstreams[0].any_error_falls_through and not upstreams[1].any_error_falls_through
    assert parse_goproxy("off") == ([], False)
    assert unescape("example.com/!upper/shout") == SHOUT
    assert unescape("example.com/Upper") is None and unescape("x/!1") is None

    monkeypatch.setattr(sys, "executable", str(Path("/nonexistent/python")))
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(GoModError, match="The Go toolchain is not installed on this build host"):
        gomod.go_binary()


def test_two_modules_of_one_repository(tmp_path: Path, aws: Provisioned, proxy: GoProxy):
    """A module below the root gets ``path``; its local replacement by the root module (``../``)
    takes that module's purl, and a package of it that module's version."""
    hello_go = (
        'package hello\n\nimport "example.com/greet"\n\nfunc Hi() string { return greet.Hello() }\n'
    )
    tools_go = (
        'package main\n\nimport "example.com/app/pkg/hello"\n\nfunc main() { _ = hello.Hi() }\n'
    )
    tools_mod = go_mod_text("example.com/tools", {APP: "v0.0.0", GREET: "v1.0.0 // indirect"})
    files = {
        "pkg/hello/hello.go": hello_go,
        "tools/go.mod": tools_mod + f"\nreplace {APP} => ../\n",
        "tools/go.sum": proxy.go_sum(SHOUT, "v1.1.0") + proxy.go_sum(GREET, "v1.0.0"),
        "tools/main.go": tools_go,
    }
    write_app(tmp_path / "req" / "app", proxy, files)
    request = Request(tmp_path / "req", aws, proxy)

    result = request.fetch([{"path": "."}, {"path": "tools"}])

    version = "v0.0.0-00010101000000-0123456789ab"
    app_purl = f"pkg:golang/example.com%2Fapp@{version}"
    tools = by_name(result.packages, "example.com/tools", "gomod")
    assert tools["path"] == "tools"
    assert tools["purl"] == f"pkg:golang/example.com%2Ftools@{version}"
    parent = by_name(tools["dependencies"], APP, "gomod")
    assert parent["version"] == "../" and parent["purl"] == app_purl
    package = by_name(result.packages, "example.com/tools", "go-package")
    assert package["path"] == "tools" and package["module"] == "example.com/tools"
    hello = by_name(package["dependencies"], f"{APP}/pkg/hello", "go-package")
    assert hello["version"] == "../pkg/hello"
    assert hello["purl"] == f"pkg:golang/example.com%2Fapp%2Fpkg%2Fhello@{version}"
    # the root module's packages: main imports nothing of pkg/hello, so both are listed
    names = {p["name"] for p in result.packages if p["type"] == "go-package"}
    assert names == {APP, f"{APP}/pkg/hello", "example.com/tools"}
    assert by_name(result.packages, f"{APP}/pkg/hello", "go-package")["path"] == "pkg/hello"


def test_a_go_mod_needing_a_newer_toolchain(tmp_path: Path, aws: Provisioned, proxy: GoProxy):
    write_app(tmp_path / "req" / "app", proxy)
    go_mod = tmp_path / "req" / "app" / "go.mod"
    go_mod.write_text(go_mod.read_text().replace("go 1.21", "go 1.99"))

    with pytest.raises(GoModError, match=r"go.mod requires go >= 1.99 \(running go 1\.\d+"):
        Request(tmp_path / "req", aws, proxy).fetch()
