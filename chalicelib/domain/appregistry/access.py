"""Who may read and write a namespace of Kiln's app registry (an OMPS organization).

Writers: admins; the tenants the organization's configuration lists (``tenants``); when it
lists none, the tenant that claimed the namespace with its first push (a conditional write, so
two tenants racing for a new namespace cannot both get it). Readers of a private package: its
writers, admins and workers; a public package is readable by anyone, anonymous callers too."""

from __future__ import annotations

import datetime

from pynamodb.exceptions import PutError

from chalicelib.adapters.appregistry_models import AppNamespaceModel
from chalicelib.domain.appregistry.callers import Caller
from chalicelib.domain.appregistry.errors import RegistryForbidden, UnauthorizedAccess
from chalicelib.domain.omps.organizations import Organization


def writers(organization: Organization) -> tuple[str, ...]:
    """The tenants that may publish to the namespace now (configured, else its claimant)."""
    if organization.tenants:
        return organization.tenants
    try:
        return (AppNamespaceModel.get(organization.name).owner_tenant,)
    except AppNamespaceModel.DoesNotExist:
        return ()


def can_write(caller: Caller, organization: Organization) -> bool:
    principal = caller.principal
    if principal is None:
        return False
    if principal.role == "admin":
        return True
    owners = writers(organization)
    return principal.tenant in owners or (not owners and not organization.tenants)


def can_read(caller: Caller, organization: Organization, visibility: str) -> bool:
    if visibility == "public":
        return True
    principal = caller.principal
    if principal is None:
        return False
    return principal.sees_all_tenants or principal.tenant in writers(organization)


def require_write(caller: Caller, organization: Organization, package: str, exists: bool) -> None:
    """RegistryForbidden (UnauthorizedAccess for anonymous callers) unless ``caller`` may
    publish to or delete from the package; claims an unclaimed namespace for its tenant."""
    if caller.principal is None:
        raise UnauthorizedAccess("Unauthorized access: a token is required")
    if not can_write(caller, organization):
        raise forbidden(organization.name, package, "push" if exists else "create")
    if not organization.tenants and caller.principal.role != "admin":
        claim(caller, organization.name)


def require_read(caller: Caller, organization: Organization, package: str, visibility: str) -> None:
    if not can_read(caller, organization, visibility):
        raise forbidden(organization.name, package, "pull")


def claim(caller: Caller, namespace: str) -> None:
    """Make the caller's tenant the namespace's owner, unless it already has one."""
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
        if AppNamespaceModel.get(namespace).owner_tenant != caller.tenant:
            raise forbidden(namespace, "", "create") from None


def forbidden(namespace: str, package: str, scope: str) -> RegistryForbidden:
    name = f"{namespace}/{package}"
    return RegistryForbidden(
        f"Unauthorized access for: {name}", {"package": name, "scopes": [scope]}
    )


def _conditional(exc: Exception) -> bool:
    cause = getattr(exc, "cause_response_code", None)
    return cause == "ConditionalCheckFailedException"
