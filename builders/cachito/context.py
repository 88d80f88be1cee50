"""What every package manager of a Cachito request gets (``FetchContext``) and gives back
(``ManagerResult``). A manager module exposes ``fetch(ctx, packages) -> ManagerResult``:
``packages`` is the request's ``packages.<manager>`` list (``[{"path": "."}]`` by default).

A manager writes its dependencies under ``ctx.deps_dir / <manager>`` through ``ctx.cache``
(never straight from a registry), never runs package scripts, and raises
builders.cachito.errors for what the user must fix. Records it returns (see
docs/cachito.md, "Package data"):

package: {"name", "type", "version", "path" (only when not "."), "purl", "canonical_purl",
          "dependencies": [dependency, ...], "module" (go-package only: its module's name)}
dependency: {"name", "type", "version", "dev" (npm, pip, yarn only), "replaces": None | {...},
             "purl" (Cachito's ICM form), "canonical_purl" (packageurl-python),
             "sha256" (of the bundled file, if any), "bundle_path" ("deps/..." or None),
             "requires": [canonical purls of its direct dependencies, where a lockfile says]}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol


@dataclasses.dataclass(frozen=True)
class Limits:
    max_dependencies: int = 5000  # per request, all managers together
    max_bytes: int = 4 * 1024**3  # downloaded dependency bytes per request
    max_source_bytes: int = 2 * 1024**3  # the clone, .git included


class DependencyCache(Protocol):
    def fetch(
        self,
        ecosystem: str,
        identity: str,
        target: Path,
        download: Callable[[Path], None],
        sha256: str | None = None,
        verify: Callable[[Path], None] | None = None,
    ) -> str:
        """Put the file known as ``identity`` (e.g. ``pypi:aiowsgi==0.7:aiowsgi-0.7.tar.gz``)
        at ``target`` and return its sha256 hex. From the shared cache when it holds it (found
        by ``sha256`` when given, else by ``identity``); else ``download(target)`` fetches it
        from its registry and it is stored in the cache. A cached copy whose sha256 (or
        ``verify``, e.g. an npm integrity check, which raises) fails is dropped and fetched
        again. Logs which came from the cache."""
        ...


@dataclasses.dataclass
class FetchContext:
    app_dir: Path  # the source tree at the commit: the bundle's app/
    deps_dir: Path  # the bundle's deps/; a manager writes under deps/<manager>/
    repo: str  # the repository URL as requested
    ref: str  # the commit
    flags: frozenset[str]
    dependency_replacements: list[dict[str, Any]]
    cache: DependencyCache
    log: Callable[[str], None]
    step: Callable[[str], None]  # reports an in_progress state_reason (moves ``updated``)
    check_interrupted: Callable[[], None]
    limits: Limits = dataclasses.field(default_factory=Limits)
    # operator settings: pip_index_url, npm_registry, goproxy, gonosumdb, allow_cidrs ...
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    work_dir: Path = Path("/tmp")  # scratch space for this request


@dataclasses.dataclass
class ManagerResult:
    packages: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    environment_variables: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    configuration_files: list[dict[str, str]] = dataclasses.field(default_factory=list)
