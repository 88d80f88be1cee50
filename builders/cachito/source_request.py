"""A Cachito request as its job message carries it (``JobMessage.source_request``), and its
fingerprint: what makes two requests' outputs the same."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from builders.cachito.context import Limits
from builders.cachito.dep_cache import DEFAULT_PREFIX
from builders.cachito.source import package_path

#: bumped when the bundle or package data an unchanged request yields changes (cached results
#: of another format are not reused)
BUNDLE_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class SourceRequest:
    """The job message's ``source_request``."""

    request_id: int
    repo: str
    ref: str
    pkg_managers: list[str]
    packages: dict[str, list[dict[str, Any]]]
    flags: frozenset[str]
    dependency_replacements: list[dict[str, Any]]
    options: dict[str, Any]
    limits: Limits
    cache_prefix: str

    @classmethod
    def parse(cls, body: Any) -> SourceRequest:
        """ValueError for a message the service could not have sent; ValidationError for a
        package path that is absolute or climbs out of the repository."""
        if not isinstance(body, dict) or not body.get("repo") or not body.get("ref"):
            raise ValueError("the job message has no source_request with repo and ref")
        given = body.get("limits") or {}
        limits = Limits(
            **{
                f.name: int(given[f.name])
                for f in dataclasses.fields(Limits)
                if given.get(f.name) is not None
            }
        )
        packages = {
            str(name): [
                {**item, "path": package_path(str(name), item.get("path"))} for item in items
            ]
            for name, items in (body.get("packages") or {}).items()
        }
        return cls(
            request_id=int(body.get("request_id") or 0),
            repo=str(body["repo"]),
            ref=str(body["ref"]),
            pkg_managers=[str(name) for name in body.get("pkg_managers") or []],
            packages=packages,
            flags=frozenset(str(flag) for flag in body.get("flags") or []),
            dependency_replacements=list(body.get("dependency_replacements") or []),
            options=dict(body.get("options") or {}),
            limits=limits,
            cache_prefix=str(body.get("cache_prefix") or DEFAULT_PREFIX),
        )

    def fingerprint(self) -> str:
        """What makes two requests' outputs the same: everything but the request's id and
        limits (a commit, pinned dependencies and immutable registry files give the same
        bundle)."""
        inputs = {
            "format": BUNDLE_FORMAT,
            "repo": self.repo,
            "ref": self.ref,
            "pkg_managers": self.pkg_managers,
            "packages": self.packages,
            "flags": sorted(self.flags),
            "dependency_replacements": self.dependency_replacements,
            "options": self.options,
        }
        canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def packages_for(self, manager: str) -> list[dict[str, Any]]:
        """``packages.<manager>``, or the repository root."""
        return [dict(item) for item in self.packages.get(manager) or [{"path": "."}]]
