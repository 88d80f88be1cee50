"""The gomod package manager's flags and dependency replacements, with the real Go toolchain
against a module proxy in a directory and the dependency cache in moto's S3: gomod-vendor
(dependencies kept in the source's vendor directory, an offline ``go build`` from it),
gomod-vendor-check refusing an inconsistent vendor directory, force-gomod-tidy, a dependency
replaced by another version, local replacements taking the parent module's purl and refused
when they leave the repository, and replacements or workspaces across several modules
refused."""

# ruff: noqa: F811 - the fixtures tests/cachito/gomod_fixtures.py holds are imported, then named

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from builders.cachito.errors import InvalidRepoStructure, UnsupportedFeature, ValidationError
from infra.local.provision import Provisioned
from tests.cachito.go_proxy import GoProxy, go_mod_text
from tests.cachito.gomod_fixtures import (
    APP,
    DOWNLOADS,
    GREET,
    MAIN_GO,
    SHOUT,
    Request,
    by_name,
    offline_build,
    proxy,  # noqa: F401
    write_app,
)


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
