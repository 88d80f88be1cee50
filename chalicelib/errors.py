"""The one DomainError tree. Each API face renders these in its own error format."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 500
    title = "Internal Server Error"

    def __init__(self, detail: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


class NoInput(DomainError):
    status, title = 400, "Bad Request"


class Unauthenticated(DomainError):
    status, title = 401, "Unauthorized"


class Forbidden(DomainError):
    status, title = 403, "Forbidden"


class NotFound(DomainError):
    status, title = 404, "Not Found"


class Conflict(DomainError):
    status, title = 409, "Conflict"


class Invalid(DomainError):
    status, title = 422, "Unprocessable Entity"
