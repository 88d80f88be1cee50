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


# -- compose requests (the composer face maps each to its registry code) -----------------------
class ComposeRejected(DomainError):
    status, title = 400, "Bad Request"


class UnsupportedDistribution(ComposeRejected):
    """No build backend here builds this distribution."""


class UnsupportedArchitecture(ComposeRejected):
    """Not an architecture Kiln builds for."""


class UnsupportedImageType(ComposeRejected):
    """The distribution's backend does not make this image type."""


class InvalidRepository(ComposeRejected):
    """A repository Kiln cannot use."""


class NoBaseURLInPayloadRepository(ComposeRejected):
    """A payload repository without a baseurl."""


class InvalidNumberOfImageBuilds(ComposeRejected):
    """Neither or both of image_request and image_requests, or an empty list."""


class KojiNotConfigured(ComposeRejected):
    """A koji section, and no Koji hub is configured."""


class InvalidUploadOptions(ComposeRejected):
    """upload_options that do not fit the image type's upload target."""


class InvalidComposeRequest(ComposeRejected):
    """Any other field of the request that is malformed."""


class UnsupportedMediaType(DomainError):
    status, title = 415, "Unsupported Media Type"


class MethodNotAllowed(DomainError):
    """The path exists; the method does not (the face adds ``Allow``)."""

    status, title = 405, "Method Not Allowed"


class Gone(DomainError):
    status, title = 410, "Gone"


class QuotaExceeded(DomainError):
    status, title = 413, "Request Entity Too Large"


class RangeNotSatisfiable(DomainError):
    status, title = 416, "Requested Range Not Satisfiable"


class BadRequest(DomainError):
    """A request a face reads as malformed (Glance answers 400 where IMS would say 422)."""

    status, title = 400, "Bad Request"
