"""The gomod package manager (builders/cachito/gomod.py) with the real Go toolchain, against a
module proxy in a directory (tests/cachito/go_proxy.py) and the dependency cache in moto's S3:
records and purls, the bundle's module cache, a second request served from the cache, the
flags, dependency replacements, refusals, and an offline ``go build`` from the bundle alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from builders.cachito import gomod
from builders.cachito.context import FetchContext, Limits, ManagerResult
from builders.cachito.dep_cache import S3DependencyCache
from builders.cachito.errors import (
    GoModError,
    InvalidRepoStructure,
    UnsupportedFeature,
    ValidationError,
)
from builders.cachito.gomod_proxy import parse_goproxy, unescape
from builders.cachito.gomod_version import module_version
from infra.local.provision import Provisioned
from tests.cachito.git_server import git
from tests.cachito.go_proxy import GoProxy, go_mod_text

GREET = "example.com/greet"
SHOUT = "example.com/Upper/shout"  # escaped as example.com/!upper/shout
APP = "example.com/app"
REF = "0123456789abcdef0123456789abcdef01234567"
DOWNLOADS = "deps/gomod/pkg/mod/cache/download"

GREET_GO = 'package greet\n\nfunc Hello() string {{ return "{}" }}\n'
SHOUT_GO = (
    'package shout\n\nimport (\n\t"strings"\n\n\t"example.com/greet"\n)\n\n'
    "func Shout() string { return strings.ToUpper(greet.Hello()) }\n"
)
MAIN_GO = (
    'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/Upper/shout"\n)\n\n'
    "func main() { fmt.Println(shout.Shout()) }\n"
)


@pytest.fixture
def proxy(tmp_path: Path) -> GoProxy:
    published = GoProxy(tmp_path / "proxy")
    published.add(GREET, "v1.0.0", {"greet.go": GREET_GO.format("hello")})
    published.add(GREET, "v1.1.0", {"greet.go": GREET_GO.format("hello again")})
    published.add(SHOUT, "v1.1.0", {"shout.go": SHOUT_GO}, requires={GREET: "v1.0.0"})
    return published


def write_app(app: Path, proxy: GoProxy, files: dict[str, str] | None = None) -> None:
    """The application: module example.com/app, a main package importing shout."""
    app.mkdir(parents=True, exist_ok=True)
    requires = {SHOUT: "v1.1.0", GREET: "v1.0.0 // indirect"}
    contents = {
        "go.mod": go_mod_text(APP, requires),
        "go.sum": proxy.go_sum(SHOUT, "v1.1.0") + proxy.go_sum(GREET, "v1.0.0"),
        "main.go": MAIN_GO,
        **(files or {}),
    }
    for path, text in contents.items():
        (app / path).parent.mkdir(parents=True, exist_ok=True)
        (app / path).write_text(text, encoding="utf-8")


class Request:
    """One request's context on ``root`` (``root/app`` is its source tree), its S3 cache and
    what it logged."""

    def __init__(
        self,
        root: Path,
        aws: Provisioned,
        proxy: GoProxy,
        flags: tuple[str, ...] = (),
        replacements: list[dict[str, Any]] | None = None,
        goproxy: str | None = None,
    ) -> None:
        self.root, self.logs = root, []
        self.cache = S3DependencyCache(
            boto3.client("s3", region_name="us-east-1"), aws.bucket, log=self.logs.append
        )
        (root / "deps").mkdir(parents=True, exist_ok=True)
        self.ctx = FetchContext(
            app_dir=root / "app",
            deps_dir=root / "deps",
            repo="https://git.example.com/app.git",
            ref=REF,
            flags=frozenset(flags),
            dependency_replacements=replacements or [],
            cache=self.cache,
            log=self.logs.append,
            step=self.logs.append,
            check_interrupted=lambda: None,
            options={"goproxy": goproxy or proxy.url, "gosumdb": "off"},
            work_dir=root / "work",
        )

    def fetch(self, packages: list[dict[str, Any]] | None = None) -> ManagerResult:
        return gomod.fetch(self.ctx, packages if packages is not None else [{"path": "."}])


def by_name(records: list[dict[str, Any]], name: str, kind: str) -> dict[str, Any]:
    return next(r for r in records if r["name"] == name and r["type"] == kind)


def offline_build(bundle: Path, result: ManagerResult, tmp_path: Path) -> str:
    """Copy app/ and deps/ alone elsewhere, apply the request's variables as atomic-reactor
    does (paths joined onto the bundle root) and ``go build`` there with no proxy and, where
    this kernel lets an unprivileged user have one, in a network namespace of its own."""
    tree = tmp_path / "unpacked"
    shutil.copytree(bundle / "app", tree / "app", symlinks=True)
    shutil.copytree(bundle / "deps", tree / "deps", symlinks=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "GOTOOLCHAIN": "local"}
    for name, variable in result.environment_variables.items():
        value = variable["value"]
        env[name] = str(tree / value) if variable["kind"] == "path" else value
    binaries = tmp_path / "binaries"
    command = [str(gomod.go_binary()), "build", "-o", f"{binaries}/", "./..."]
    if shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"]).returncode == 0:
        command = ["unshare", "-rn", *command]
    done = subprocess.run(
        command, cwd=tree / "app", env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    ran = subprocess.run([binaries / "app"], capture_output=True, text=True, check=True)
    return ran.stdout.strip()


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


def test_vendor_flag_keeps_dependencies_in_the_source(
    tmp_path: Path, aws: Provisioned, proxy: GoProxy
):
    write_app(tmp_path / "req" / "app", proxy)
    request = Request(tmp_path / "req", aws, proxy, flags=("gomod-vendor",))

    result = request.fetch()

    app = tmp_path / "req" / "app"
    assert (app / "vendor" / "example.com" / "Upper" / "shout" / "shout.go").is_file()
    assert "# example.com/Upper/shout v1.1.0" in (app / "vendor" / "modules.txt").read_text()
    downloads = tmp_path / "req" / DOWNLOADS
    assert downloads.is_dir() and not any(downloads.iterdir())
    deps = {d["name"]: d for d in by_name(result.packages, APP, "gomod")["dependencies"]}
    assert deps[SHOUT]["version"] == "v1.1.0"
    assert deps[SHOUT]["bundle_path"] is None and deps[SHOUT]["sha256"] is None
    assert result.environment_variables["GOFLAGS"]["value"] == "-mod=vendor"
    assert request.cache.fetched > 0  # go mod vendor fetched through the cache too

    shutil.rmtree(proxy.root)
    assert offline_build(tmp_path / "req", result, tmp_path) == "HELLO"

    # the vendor directory is now consistent: gomod-vendor-check accepts it as it is
    checked = Request(tmp_path / "req", aws, proxy, flags=("gomod-vendor-check",))
    assert checked.fetch().packages == result.packages


def test_vendor_check_refuses_an_inconsistent_vendor_directory(
    tmp_path: Path, aws: Provisioned, proxy: GoProxy
):
    stale = "# example.com/Upper/shout v1.0.0\n## explicit\nexample.com/Upper/shout\n"
    write_app(tmp_path / "req" / "app", proxy, {"vendor/modules.txt": stale})
    request = Request(tmp_path / "req", aws, proxy, flags=("gomod-vendor-check",))

    with pytest.raises(ValidationError) as failure:
        request.fetch()

    assert failure.value.message == (
        "The content of the vendor directory is not consistent with go.mod. Run `go mod vendor` "
        "locally to fix this problem. See the logs for more details."
    )
    assert any("vendor/modules.txt" in line or "modules.txt" in line for line in request.logs)


def test_force_gomod_tidy_runs_go_mod_tidy_first(tmp_path: Path, aws: Provisioned, proxy: GoProxy):
    """An unused requirement goes, a missing one is added at its latest version (go asks the
    proxy for the version list, which passes through uncached); an empty proxy in front of the
    real one is skipped, as go skips a 404."""
    proxy.add("example.com/unused", "v1.0.0", {"unused.go": "package unused\n"})
    proxy.add("example.com/extra", "v1.0.0", {"extra.go": "package extra\n\nconst X = 1\n"})
    proxy.add("example.com/extra", "v1.2.0", {"extra.go": "package extra\n\nconst X = 2\n"})
    main = MAIN_GO.replace('"fmt"\n', '"fmt"\n\n\t_ "example.com/extra"\n')
    write_app(tmp_path / "req" / "app", proxy, {"main.go": main})
    go_mod = tmp_path / "req" / "app" / "go.mod"
    go_mod.write_text(go_mod.read_text() + "\nrequire example.com/unused v1.0.0\n")
    empty = tmp_path / "empty-proxy"
    empty.mkdir()
    goproxy = f"{empty.as_uri()},{proxy.url}"
    request = Request(tmp_path / "req", aws, proxy, flags=("force-gomod-tidy",), goproxy=goproxy)

    result = request.fetch()

    deps = {d["name"]: d["version"] for d in by_name(result.packages, APP, "gomod")["dependencies"]}
    assert deps == {GREET: "v1.0.0", SHOUT: "v1.1.0", "example.com/extra": "v1.2.0"}
    tidied = go_mod.read_text()
    assert "example.com/unused" not in tidied and "example.com/extra v1.2.0" in tidied


def test_dependency_replacement(tmp_path: Path, aws: Provisioned, proxy: GoProxy):
    write_app(tmp_path / "req" / "app", proxy)
    replacement = {"name": GREET, "type": "gomod", "version": "v1.1.0"}
    request = Request(tmp_path / "req", aws, proxy, replacements=[replacement])

    result = request.fetch()

    deps = {d["name"]: d for d in by_name(result.packages, APP, "gomod")["dependencies"]}
    assert deps[GREET]["version"] == "v1.1.0"
    assert deps[GREET]["replaces"] == {"type": "gomod", "name": GREET, "version": "v1.0.0"}
    assert deps[GREET]["purl"] == "pkg:golang/example.com%2Fgreet@v1.1.0"
    assert deps[SHOUT]["replaces"] is None
    go_mod = (tmp_path / "req" / "app" / "go.mod").read_text()
    assert "replace example.com/greet => example.com/greet v1.1.0" in go_mod
    package = by_name(result.packages, APP, "go-package")
    assert by_name(package["dependencies"], GREET, "go-package")["version"] == "v1.1.0"
    shutil.rmtree(proxy.root)
    assert offline_build(tmp_path / "req", result, tmp_path) == "HELLO AGAIN"


def test_local_replacements_take_the_parent_module_purl(
    tmp_path: Path, aws: Provisioned, proxy: GoProxy
):
    lib_go = 'package lib\n\nimport "example.com/lib/sub"\n\nfunc Name() string { return sub.N }\n'
    tool_go = 'package main\n\nimport "example.com/lib"\n\nfunc main() { _ = lib.Name() }\n'
    files = {
        "lib/go.mod": go_mod_text("example.com/lib"),
        "lib/lib.go": lib_go,
        "lib/sub/sub.go": 'package sub\n\nconst N = "local"\n',
        "cmd/tool/main.go": tool_go,
    }
    write_app(tmp_path / "req" / "app", proxy, files)
    go_mod = tmp_path / "req" / "app" / "go.mod"
    go_mod.write_text(
        go_mod.read_text()
        + "\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => ./lib\n"
    )
    request = Request(tmp_path / "req", aws, proxy)

    result = request.fetch()

    version = "v0.0.0-00010101000000-0123456789ab"
    parent = f"pkg:golang/example.com%2Fapp@{version}"
    lib = by_name(
        by_name(result.packages, APP, "gomod")["dependencies"], "example.com/lib", "gomod"
    )
    assert lib["version"] == "./lib" and lib["purl"] == f"{parent}#lib"
    assert lib["canonical_purl"] == f"pkg:golang/example.com/app@{version}#lib"
    assert lib["bundle_path"] is None
    tool = by_name(result.packages, f"{APP}/cmd/tool", "go-package")
    assert tool["path"] == "cmd/tool" and tool["module"] == APP
    sub = by_name(tool["dependencies"], "example.com/lib/sub", "go-package")
    assert sub["version"] == "./lib/sub" and sub["purl"] == f"{parent}#lib/sub"
    lib_package = by_name(tool["dependencies"], "example.com/lib", "go-package")
    assert lib_package["requires"] == [f"pkg:golang/example.com/app@{version}#lib/sub"]


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        ("../outside", ValidationError, "The local file dependency path ../outside is outside"),
        ("/etc/lib", UnsupportedFeature, "Absolute paths to gomod dependencies are not supported"),
    ],
)
def test_local_replacements_must_stay_in_the_repository(
    tmp_path: Path, aws: Provisioned, proxy: GoProxy, target: str, error: type, message: str
):
    write_app(tmp_path / "req" / "app", proxy)
    go_mod = tmp_path / "req" / "app" / "go.mod"
    go_mod.write_text(go_mod.read_text() + f"\nreplace example.com/greet => {target}\n")

    with pytest.raises(error, match=message):
        Request(tmp_path / "req", aws, proxy).fetch()


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


def test_workspaces_and_replacements_of_several_modules_are_refused(
    tmp_path: Path, aws: Provisioned, proxy: GoProxy
):
    write_app(tmp_path / "req" / "app", proxy, {"sub/go.mod": go_mod_text("example.com/sub")})
    replacement = {"name": GREET, "type": "gomod", "version": "v1.1.0"}
    request = Request(tmp_path / "req", aws, proxy, replacements=[replacement])

    with pytest.raises(UnsupportedFeature, match="only supported for a single go module path"):
        request.fetch([{"path": "."}, {"path": "sub"}])
    (tmp_path / "req" / "app" / "go.work").write_text("go 1.21\n\nuse .\n")
    with pytest.raises(InvalidRepoStructure, match="Go workspaces are not supported by Cachito."):
        request.fetch([{"path": "sub"}])


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
