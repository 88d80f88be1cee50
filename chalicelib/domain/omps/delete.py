"""Deleting releases of an OMPS package (omps-behaviour.md §10), after the Authorization
header check (403 ``OMPSAuthorizationHeaderRequired``).

- One version: deleted as given (no format check, no existence check first). The registry's
  not-found is 404 ``QuayPackageNotFound`` with its message; a caller the registry refuses (a
  token Kiln does not know, §15.8; another tenant's organization, issue 13 part 4) is 403
  ``QuayAuthorizationError`` with its answer; any other refusal 500 ``QuayPackageError``
  with its message (upstream answers Quay's own 403 so too, §10).
- All versions: every release of the package, as the registry lists them (newest first,
  versions OMPS would refuse included), deleted one by one. An unknown package is 404
  ``QuayPackageNotFound`` ``Package <org>/<repo> not found``; a refused listing as in §6. If a
  delete fails part way, its error also carries ``deleted``: the versions already deleted
  (§15.6). The emptied package is kept.

Success: 200 ``{"organization", "repo", "deleted": [...]}``."""

from __future__ import annotations

from typing import Any

from chalicelib.config import Settings
from chalicelib.domain.appregistry import callers
from chalicelib.domain.appregistry.callers import Caller
from chalicelib.domain.appregistry.errors import (
    PackageNotFound,
    RegistryError,
    RegistryForbidden,
    UnauthorizedAccess,
)
from chalicelib.domain.appregistry.releases import AppRegistry
from chalicelib.domain.omps.errors import (
    OmpsError,
    QuayAuthorizationError,
    QuayPackageError,
    QuayPackageNotFound,
)
from chalicelib.domain.omps.push import MEDIA_TYPE, require_authorization


def delete(
    authorization: str | None,
    organization: str,
    repo: str,
    version: str | None,
    registry: AppRegistry,
    settings: Settings,
) -> dict[str, Any]:
    """Delete ``version`` of the package, or every release of it (``version`` None)."""
    header = require_authorization(authorization)
    if version is None:
        deleted = _delete_all(header, organization, repo, registry, settings)
    else:
        caller = _caller(header, settings, "")
        _delete_one(caller, organization, repo, version, registry, None)
        deleted = [version]
    return {"organization": organization, "repo": repo, "deleted": deleted}


def _caller(header: str, settings: Settings, prefix: str) -> Caller:
    try:
        return callers.caller_from(header, settings)
    except UnauthorizedAccess as error:
        raise QuayAuthorizationError(prefix + error.detail, error.body()) from error


def _delete_all(
    header: str, organization: str, repo: str, registry: AppRegistry, settings: Settings
) -> list[str]:
    lookup = f"Cannot retrieve information about package {organization}/{repo}: "
    caller = _caller(header, settings, lookup)
    try:
        names = registry.release_names(caller, organization, repo)
    except PackageNotFound as error:
        raise QuayPackageNotFound(f"Package {organization}/{repo} not found") from error
    except (RegistryForbidden, UnauthorizedAccess) as error:
        raise QuayAuthorizationError(lookup + error.detail, error.body()) from error
    except RegistryError as error:
        raise QuayPackageError(lookup + error.detail) from error
    deleted: list[str] = []
    for name in dict.fromkeys(names):  # a release under several media types is listed once
        _delete_one(caller, organization, repo, name, registry, deleted)
        deleted.append(name)
    return deleted


def _delete_one(
    caller: Caller,
    organization: str,
    repo: str,
    version: str,
    registry: AppRegistry,
    deleted: list[str] | None,
) -> None:
    """Delete one release; in a delete-all (``deleted`` given), a failure names the
    versions deleted before it."""
    try:
        registry.delete(caller, organization, repo, version, MEDIA_TYPE)
    except RegistryError as error:
        raise _failed(error, deleted) from error


def _failed(error: RegistryError, deleted: list[str] | None) -> OmpsError:
    extra: dict[str, Any] = {} if deleted is None else {"deleted": list(deleted)}
    message = error.detail or "Unknown error"
    failure: OmpsError
    if isinstance(error, PackageNotFound):
        failure = QuayPackageNotFound(message)
    elif isinstance(error, UnauthorizedAccess | RegistryForbidden):
        failure = QuayAuthorizationError(message, error.body())
    else:
        failure = QuayPackageError(message)
    failure.extra.update(extra)
    return failure
