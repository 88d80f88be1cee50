"""The composer face's error registry: every error it returns, composer style. Each DomainError
is rendered through the first entry that claims its class (walking the class's MRO), so no
error escapes the registry."""

from __future__ import annotations

import dataclasses

from chalicelib import errors as domain
from chalicelib.errors import DomainError

PREFIX = "/api/image-builder-composer/v2"
ERRORS_HREF = f"{PREFIX}/errors"
CODE_PREFIX = "IMAGE-BUILDER-COMPOSER-"


class InvalidComposeId(DomainError):
    status = 400


class ComposeNotFound(DomainError):
    status = 404


class InvalidErrorId(DomainError):
    status = 400


class ErrorNotFound(DomainError):
    status = 404


class InvalidPageParam(DomainError):
    status = 400


class InvalidSizeParam(DomainError):
    status = 400


class InvalidOffsetParam(DomainError):
    status = 400


@dataclasses.dataclass(frozen=True)
class ServiceError:
    id: int
    status: int
    reason: str
    raised_for: tuple[type[DomainError], ...] = ()


#: the registry, in id order (GET /errors pages through it)
REGISTRY: tuple[ServiceError, ...] = (
    ServiceError(2, 403, "Account is unauthorized to perform this action", (domain.Forbidden,)),
    ServiceError(
        3, 415, "Only 'application/json' content is supported", (domain.UnsupportedMediaType,)
    ),
    ServiceError(4, 400, "Unsupported distribution", (domain.UnsupportedDistribution,)),
    ServiceError(5, 400, "Unsupported architecture", (domain.UnsupportedArchitecture,)),
    ServiceError(6, 400, "Unsupported image type", (domain.UnsupportedImageType,)),
    ServiceError(7, 400, "Invalid repository", (domain.InvalidRepository,)),
    ServiceError(14, 400, "Invalid format for compose id", (InvalidComposeId,)),
    ServiceError(15, 404, "Compose with given id not found", (ComposeNotFound,)),
    ServiceError(
        16,
        400,
        "Invalid format for error id, it should be an integer as a string",
        (InvalidErrorId,),
    ),
    ServiceError(17, 404, "Error with given id not found", (ErrorNotFound,)),
    ServiceError(
        18,
        400,
        "Invalid format for page param, it should be an integer as a string",
        (InvalidPageParam,),
    ),
    ServiceError(
        19,
        400,
        "Invalid format for size param, it should be an integer as a string",
        (InvalidSizeParam,),
    ),
    ServiceError(20, 400, "Malformed json, unable to decode body", (domain.NoInput,)),
    ServiceError(21, 404, "Requested resource doesn't exist", (domain.NotFound,)),
    ServiceError(
        22, 405, "Requested method isn't supported for resource", (domain.MethodNotAllowed,)
    ),
    ServiceError(
        24,
        400,
        "BaseURL must be specified for payload repositories",
        (domain.NoBaseURLInPayloadRepository,),
    ),
    ServiceError(
        25,
        400,
        "Compose request has unsupported number of image builds",
        (domain.InvalidNumberOfImageBuilds,),
    ),
    ServiceError(
        30,
        400,
        "Invalid compose request",
        (
            domain.InvalidComposeRequest,
            domain.ComposeRejected,
            domain.Invalid,
            domain.BadRequest,
            domain.QuotaExceeded,
        ),
    ),
    ServiceError(31, 400, "Koji is not configured for this service", (domain.KojiNotConfigured,)),
    ServiceError(
        32, 400, "Upload options do not fit the image type", (domain.InvalidUploadOptions,)
    ),
    ServiceError(
        33,
        400,
        "Invalid format for offset param, it should be a non-negative integer",
        (InvalidOffsetParam,),
    ),
    ServiceError(34, 409, "The compose changed at the same time; retry", (domain.Conflict,)),
    ServiceError(
        401, 401, "Account authentication could not be verified", (domain.Unauthenticated,)
    ),
    ServiceError(10000, 500, "Unspecified internal error", (DomainError,)),
)
_BY_ID = {entry.id: entry for entry in REGISTRY}


def entry_for(error: DomainError) -> ServiceError:
    for cls in type(error).__mro__:
        for entry in REGISTRY:
            if cls in entry.raised_for:
                return entry
    return _BY_ID[10000]


def find(error_id: int) -> ServiceError | None:
    return _BY_ID.get(error_id)


def body(entry: ServiceError, operation_id: str, details: str | None = None) -> dict[str, str]:
    rendered = {
        "href": f"{ERRORS_HREF}/{entry.id}",
        "id": str(entry.id),
        "kind": "Error",
        "code": f"{CODE_PREFIX}{entry.id}",
        "reason": entry.reason,
        "operation_id": operation_id,
    }
    if details:
        rendered["details"] = details
    return rendered
