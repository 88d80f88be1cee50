"""What can go wrong, each with the exit code scripts rely on (docs/cli.md, "Exit codes").

Every error is a ``click.ClickException``, so click stops the command where it is raised;
``main.main`` prints it as one line, ``kiln: error: <message>``, and exits with its code."""

from __future__ import annotations

from typing import ClassVar

import click

SUCCESS = 0
FAILED = 1  # the build, job or request ended in failure; a checksum or provenance check failed
USAGE = 2  # bad input: click's own usage errors, and files or values that cannot be used
AUTH = 3  # the API refused the token (401, 403)
NOT_FOUND = 4  # the API does not know it (404)
UNREACHABLE = 5  # nothing answers at the URL (connection refused, timeout)
API_ERROR = 6  # any other error answer of the API (4xx, 5xx)


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of spaces folded into single spaces."""
    return " ".join(text.split())


class KilnError(click.ClickException):
    """An error ``kiln`` reports on one line and exits with ``exit_code`` for."""

    exit_code: ClassVar[int] = API_ERROR  # type: ignore[misc]

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class Failed(KilnError):
    """The thing asked for ran and failed, or what came back did not check out."""

    exit_code = FAILED


class BadInput(KilnError):
    """Input ``kiln`` cannot use (a file that is not there, a recipe that is not JSON)."""

    exit_code = USAGE


class AuthFailed(KilnError):
    exit_code = AUTH


class NotFound(KilnError):
    exit_code = NOT_FOUND


class Unreachable(KilnError):
    exit_code = UNREACHABLE


class ApiError(KilnError):
    exit_code = API_ERROR
