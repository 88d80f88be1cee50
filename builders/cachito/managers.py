"""The package managers a Cachito request may name, and how their results become one package
data document (the host's packages.json; builders/cachito/context.py gives the records).

Each manager is a module exposing ``fetch(ctx, packages) -> ManagerResult``, imported by name
only when a request needs it. ``git-submodule`` is no module: the source fetch handles it
(builders/cachito/source.py).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from types import ModuleType
from typing import Any

from builders.cachito.context import FetchContext, ManagerResult
from builders.cachito.errors import CachitoError, ValidationError
from builders.cachito.git_fetch import SUBMODULE_MANAGER

#: manager name -> the module that fetches its dependencies
MODULES = {
    "gomod": "builders.cachito.gomod",
    "npm": "builders.cachito.npm",
    "pip": "builders.cachito.pip",
    "yarn": "builders.cachito.yarn",
}


class ManagerUnavailable(CachitoError):
    """This host has no module for a package manager the request names."""


def known(name: str) -> bool:
    return name == SUBMODULE_MANAGER or name in MODULES


def available() -> list[str]:
    """The managers this host can run (their modules are installed)."""
    found = [SUBMODULE_MANAGER]
    for name, module in MODULES.items():
        try:
            present = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            present = False
        if present:
            found.append(name)
    return sorted(found)


def module(name: str) -> ModuleType:
    """The module of the manager ``name``; ValidationError for a name Kiln does not know,
    ManagerUnavailable when this host lacks its module."""
    path = MODULES.get(name)
    if path is None:
        raise ValidationError(f"The following package managers are not enabled: {name}")
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name != path:  # the module is there, something it imports is not: a host fault
            raise
        raise ManagerUnavailable(f"This host cannot fetch {name} dependencies") from None


def fetch(name: str, ctx: FetchContext, packages: list[dict[str, Any]]) -> ManagerResult:
    """The dependencies of ``packages`` (the request's ``packages.<name>``) in ``ctx.deps_dir``."""
    result = module(name).fetch(ctx, packages)
    if not isinstance(result, ManagerResult):
        raise TypeError(f"the {name} manager returned {type(result).__name__}, not ManagerResult")
    return result


def dependency_identities(packages: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """The distinct dependencies of ``packages``, as the service counts them."""
    return {
        (d.get("type"), d.get("name"), d.get("version"), bool(d.get("dev")))
        for package in packages
        for d in package.get("dependencies") or []
    }


def package_data(
    results: list[ManagerResult], log: Callable[[str], None] = print
) -> dict[str, Any]:
    """The results in request order as one document: ``{"packages", "environment_variables",
    "configuration_files"}``. A variable set twice keeps its first value (a different second
    one is logged); a configuration file written twice must have the same content."""
    packages: list[dict[str, Any]] = []
    variables: dict[str, dict[str, str]] = {}
    files: dict[str, dict[str, str]] = {}
    for result in results:
        packages += result.packages
        for name, value in result.environment_variables.items():
            if name in variables and variables[name] != value:
                log(f"W: kiln: environment variable {name} set twice; keeping {variables[name]}")
                continue
            variables[name] = value
        for item in result.configuration_files:
            earlier = files.get(item["path"])
            if earlier is not None and earlier["content"] != item["content"]:
                raise RuntimeError(f"two package managers write {item['path']} differently")
            files[item["path"]] = item
    return {
        "packages": packages,
        "environment_variables": dict(sorted(variables.items())),
        "configuration_files": [files[path] for path in sorted(files)],
    }
