"""The errors a Cachito request fails with, named as upstream Cachito names them.

Each travels in the host's failure answer as ``<FailureCode>: <ErrorType>: <message>``: a
``client`` error (the request or the repository must change) as BUILD_FAILED, a ``server``
error (Kiln or a registry failed) as HOST_ERROR. The service reads the type back into the
request's ``error_type`` and ``error_origin`` (chalicelib/domain/cachito/job_kinds.py)."""

from __future__ import annotations

from builders.backends.base import BuildError
from chalicelib.host_protocol import FailureCode


class CachitoError(BuildError):
    """A request failure; the class name is the request's ``error_type``."""

    origin = "server"

    def __init__(self, message: str) -> None:
        code = FailureCode.BUILD_FAILED if self.origin == "client" else FailureCode.HOST_ERROR
        super().__init__(f"{type(self).__name__}: {message}", code=code)
        self.message = message


class ClientError(CachitoError):
    origin = "client"


class ValidationError(ClientError):
    """The request's input is invalid."""


class InvalidRequestData(ClientError):
    """The request names something the repository does not have."""


class InvalidRepoStructure(ClientError):
    """The repository lacks a file a package manager needs, or has one it must not."""


class InvalidFileFormat(ClientError):
    """A lockfile or requirements file cannot be read or breaks a rule."""


class InvalidChecksum(ClientError):
    """A downloaded file does not match the checksum the project declares."""


class UnsupportedFeature(ClientError):
    """The project uses something Kiln does not support."""


class RepositoryAccessError(CachitoError):
    """The repository (or a submodule) could not be fetched."""


class NetworkError(CachitoError):
    """A registry or download failed."""


class GoModError(CachitoError):
    """The Go toolchain failed."""


class FileAccessError(CachitoError):
    """A file the request needs could not be read or written."""
