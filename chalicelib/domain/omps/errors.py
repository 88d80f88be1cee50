"""The OMPS face's errors (omps-behaviour.md §2): the class name is the body's ``error`` id,
``extra`` the fields some classes add (``validation_info``, ``quay_response``,
``greenwave_response``; Kiln's ``deleted`` on a delete-all that stopped part way)."""

from __future__ import annotations

from typing import Any

from chalicelib.errors import DomainError


class OmpsError(DomainError):
    status = 500

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.extra = extra

    @property
    def error_id(self) -> str:
        return type(self).__name__


class OMPSUploadedFileError(OmpsError):
    status = 400


class OMPSExpectedFileError(OmpsError):
    status = 400


class OMPSInvalidVersionFormat(OmpsError):
    status = 400


class KojiNotAnOperatorImage(OmpsError):
    status = 400


class PackageValidationError(OmpsError):
    status = 400

    def __init__(self, message: str, validation_info: Any = None) -> None:
        super().__init__(message, validation_info=validation_info or {})


class GreenwaveUnsatisfiedError(OmpsError):
    status = 400

    def __init__(self, message: str, greenwave_response: Any = None) -> None:
        super().__init__(message, greenwave_response=greenwave_response or {})


class OMPSAuthorizationHeaderRequired(OmpsError):
    status = 403


class QuayAuthorizationError(OmpsError):
    status = 403

    def __init__(self, message: str, quay_response: Any = None) -> None:
        super().__init__(message, quay_response=quay_response or {})


class QuayPackageNotFound(OmpsError):
    status = 404


class KojiNVRBuildNotFound(OmpsError):
    status = 404


class RequestEntityTooLarge(OmpsError):
    status = 413


class QuayCourierError(OmpsError):
    status = 500

    def __init__(self, message: str, quay_response: Any = None) -> None:
        super().__init__(message, quay_response=quay_response or {})


class QuayPackageError(OmpsError):
    status = 500


class KojiManifestsArchiveNotFound(OmpsError):
    status = 500


class KojiError(OmpsError):
    status = 500


class GreenwaveError(OmpsError):
    status = 500

    def __init__(self, message: str, greenwave_response: Any = None) -> None:
        super().__init__(message, greenwave_response=greenwave_response or {})
