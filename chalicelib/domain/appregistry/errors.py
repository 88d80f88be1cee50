"""Kiln's app registry errors, as Quay's appregistry (CNR) API answers them
(omps-behaviour.md §14): ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from typing import Any

from chalicelib.errors import DomainError


class RegistryError(DomainError):
    status = 500
    code = "internal-error"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.detail, "details": self.details}}


class InvalidUsage(RegistryError):
    status, code = 400, "invalid-usage"


class UnauthorizedAccess(RegistryError):
    status, code = 401, "unauthorized-access"


class RegistryForbidden(RegistryError):
    status, code = 403, "forbidden"


class PackageNotFound(RegistryError):
    status, code = 404, "package-not-found"


class PackageExists(RegistryError):
    status, code = 409, "package-exists"


class InvalidRelease(RegistryError):
    status, code = 422, "invalid-release"


class CsvNotFound(RegistryError):
    """The release's operator bundle has no ClusterServiceVersion of that name (OLM export)."""

    status, code = 404, "csv-not-found"


class InvalidBundle(RegistryError):
    """The release's blob is not an operator bundle Kiln can export for OLM."""

    status, code = 422, "invalid-bundle"
