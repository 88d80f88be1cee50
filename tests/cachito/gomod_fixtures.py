"""What the gomod manager tests share (tests/cachito/test_gomod.py, test_gomod_flags.py): the
modules a module proxy in a directory publishes (tests/cachito/go_proxy.py: greet at two
versions, and shout requiring it), the application importing them, one request's context with
the dependency cache in moto's S3 and what it logged, looking records up by name, and an
offline ``go build`` from a copy of the bundle alone."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest

from builders.cachito import gomod
from builders.cachito.context import FetchContext, ManagerResult
from builders.cachito.dep_cache import S3DependencyCache
from infra.local.provision import Provisioned
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
