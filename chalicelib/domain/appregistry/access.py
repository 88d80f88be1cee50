"""Who may read and write a namespace of Kiln's app registry (an OMPS organization).

Writers: admins; the tenants the organization's configuration lists (``tenants``); when it
lists none, the tenant that claimed the namespace with its first push (a conditional write, so
two tenants racing for a new namespace cannot both get it) and, while no one has, any caller
with a token. Readers of a private package: its writers, admins and workers; a public package
is readable by anyone, anonymous callers too. As Quay's, a refusal names the package and the
scopes missing: ``["create"]`` to push a new package, ``["push"]`` to push to one, ``["pull"]``
to read one, ``["pull", "push"]`` to delete."""

from __future__ import annotations

import datetime

from pynamodb.exceptions import PutError

from chalicelib.adapters.appregistry_models import AppNamespaceModel
from chalicelib.auth import Principal
from chalicelib.domain.appregistry.callers import Caller
from chalicelib.domain.appregistry.errors import RegistryForbidden, UnauthorizedAccess
from chalicelib.domain.omps.organizations import Organization


def writers(organization: Organization) -> tuple[str, ...]:
    """The tenants that may publish to the namespace now (configured, else its claimant)."""
    if organization.tenants:
        return organization.tenants
    try:
        return (AppNamespaceModel.get(organization.name, consistent_read=True).owner_tenant,)
    except AppNamespaceModel.DoesNotExist:
        return ()


def can_write(caller: Caller, organization: Organization) -> bool:
    return _writes(caller, organization, writers(organization))


def can_read(caller: Caller, organization: Organization, visibility: str) -> bool:
    """Whether ``caller`` may read a package of the namespace with this visibility."""
    if visibility == "public":
        return True
    principal = caller.principal
    if principal is None:
        return False
    return principal.sees_all_tenants or principal.tenant in writers(organization)


def knows_namespace(caller: Caller, organization: Organization) -> bool:
    """Whether ``caller`` may learn that a package of the namespace does not exist (404)
    rather than be refused it (403): its writers, admins and workers."""
    principal = caller.principal
    if principal is None:
        return False
    return principal.sees_all_tenants or can_write(caller, organization)


def require_write(
    caller: Caller,
    organization: Organization,
    package: str,
    exists: bool,
    scopes: list[str] | None = None,
    claiming: bool = True,
) -> None:
    """RegistryForbidden (UnauthorizedAccess for anonymous callers) unless ``caller`` may
    publish to or delete from the package; ``claiming``: an unclaimed namespace becomes its
    tenant's. ``scopes``: what a refusal names (default: ``push``, ``create`` for a new
    package)."""
    principal = require_token(caller, organization, package)
    owners = writers(organization)
    refusal = scopes or ["push" if exists else "create"]
    if not _writes(caller, organization, owners):
        raise forbidden(organization.name, package, *refusal)
    if claiming and not organization.tenants and not owners and principal.role != "admin":
        claim(caller, organization.name, package, refusal)


def require_token(caller: Caller, organization: Organization, package: str) -> Principal:
    """The caller's principal; UnauthorizedAccess for an anonymous one (writes need a token)."""
    if caller.principal is None:
        raise UnauthorizedAccess(
            f"Unauthorized access for: {organization.name}/{package}: a token is required",
            {"package": f"{organization.name}/{package}"},
        )
    return caller.principal


def require_read(caller: Caller, organization: Organization, package: str, visibility: str) -> None:
    if not can_read(caller, organization, visibility):
        raise forbidden(organization.name, package, "pull")


def claim(
    caller: Caller, namespace: str, package: str = "", scopes: list[str] | None = None
) -> None:
    """Make the caller's tenant the namespace's owner, unless it already has one (then the
    caller must be of that tenant)."""
    record = AppNamespaceModel(
        namespace,
        owner_tenant=caller.tenant,
        created=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
    )
    try:
        record.save(condition=AppNamespaceModel.namespace.does_not_exist())
    except PutError as exc:
        if not _conditional(exc):
            raise
        owner = AppNamespaceModel.get(namespace, consistent_read=True).owner_tenant
        if owner != caller.tenant:
            raise forbidden(namespace, package, *(scopes or ["create"])) from None


def forbidden(namespace: str, package: str, *scopes: str) -> RegistryForbidden:
    name = f"{namespace}/{package}"
    return RegistryForbidden(
        f"Unauthorized access for: {name}", {"package": name, "scopes": list(scopes)}
    )


def _writes(caller: Caller, organization: Organization, owners: tuple[str, ...]) -> bool:
    principal = caller.principal
    if principal is None:
        return False
    if principal.role == "admin":
        return True
    if organization.tenants or owners:
        return principal.tenant in owners
    return True  # an unclaimed namespace: the first push claims it


def _conditional(exc: Exception) -> bool:
    cause = getattr(exc, "cause_response_code", None)
    return cause == "ConditionalCheckFailedException"
