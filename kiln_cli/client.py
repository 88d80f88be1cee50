"""One HTTP session with Kiln: every face's path under the API root, the bearer token, and each
error answer turned into the ``KilnError`` (and so the exit code) it means, with the message
the face itself gave in its own error format."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import requests

from kiln_cli import __version__
from kiln_cli.config import Connection
from kiln_cli.errors import ApiError, AuthFailed, BadInput, KilnError, NotFound, Unreachable

IMS = "/apis/ims/v3"
COMPOSER = "/api/image-builder-composer/v2"
GLANCE = "/v2/images"
CACHITO = "/api/v1"
OMPS = "/omps/v2"
KILN = "/kiln/v1"

API_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds
TRANSFER_TIMEOUT = (10.0, 300.0)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MESSAGE_LIMIT = 400
#: where a token came from (config.Connection.token_source), as a user would name it
TOKEN_SOURCES = {
    "flag": "--token",
    "env": "KILN_TOKEN",
    "login": "the saved login",
    "stack": "stack.json",
}


def api_message(response: requests.Response) -> str:
    """What the answer says went wrong, whichever face's error format it is in: IMS's and
    Kiln's problem+json ``detail``, composer's ``reason``/``details``, Glance's and OMPS's
    ``message``, Cachito's ``error`` (or its per-field ``errors``); else the text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = _message_of(body)
        if message:
            return message[:MESSAGE_LIMIT]
    text = " ".join(response.text.split())
    return text[:MESSAGE_LIMIT] or response.reason or "no message"


def _message_of(body: dict[str, Any]) -> str:
    if body.get("kind") == "Error":  # composer
        reason, details = str(body.get("reason") or ""), str(body.get("details") or "")
        return f"{reason}: {details}" if details and details != reason else reason
    message = next(
        (body[key] for key in ("detail", "message", "error") if isinstance(body.get(key), str)),
        "",
    )
    errors = body.get("errors")
    if isinstance(errors, dict) and errors:
        fields = "; ".join(f"{name}: {_flat(problem)}" for name, problem in errors.items())
        message = f"{message} ({fields})" if message else fields
    return message or str(body.get("title") or "")


def _flat(problem: object) -> str:
    if isinstance(problem, list):
        return ", ".join(str(p) for p in problem)
    return str(problem)


def error_for(response: requests.Response, hint: str = "") -> KilnError:
    """The error an answer of status 400 or more means."""
    status = response.status_code
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = response.reason or "error"
    message = f"{status} {phrase}: {api_message(response)}"
    if status == 401:
        return AuthFailed(f"{message}{hint}")
    if status == 403:
        return AuthFailed(message)
    if status == 404:
        return NotFound(message)
    return ApiError(message)


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class KilnClient:
    """Calls Kiln at ``connection.url`` with its token; ``external`` calls a presigned URL."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.base_url = connection.url
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"kiln-cli/{__version__}"
        self.session.headers["Accept"] = "application/json"
        if connection.token:
            self.session.headers["Authorization"] = f"Bearer {connection.token}"

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The answer to ``method path`` (under the API root), or the error it means."""
        kwargs.setdefault("timeout", API_TIMEOUT)
        response = self._send(method, self.url(path), "Kiln", **kwargs)
        if response.status_code >= 400:
            error = error_for(response, self._auth_hint())
            response.close()
            raise error
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The answer's JSON body; one that is not JSON is an API error."""
        response = self.call(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                f"{method} {path} answered {response.status_code} without a JSON body"
            ) from None

    def get(self, path: str, **params: Any) -> Any:
        return self.json("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.json("POST", path, json=body)

    def external(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """A call to a presigned URL (an S3 object): no token, no JSON Accept."""
        kwargs.setdefault("timeout", TRANSFER_TIMEOUT)
        headers = {"Authorization": None, "Accept": "*/*", **kwargs.pop("headers", {})}
        response = self._send(method, url, origin(url), headers=headers, **kwargs)
        if response.status_code >= 400:
            error = error_for(response)
            response.close()
            raise error
        return response

    def _send(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, url, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise Unreachable(self._unreachable(url, what, exc)) from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as exc:
            raise BadInput(f"not a usable URL: {url} ({exc})") from None

    def _unreachable(self, url: str, what: str, exc: Exception) -> str:
        where = self.base_url if what == "Kiln" else what
        host = urlsplit(url).hostname or ""
        hint = "is `make up` running?" if host in LOOPBACK else "check the URL and the network"
        timed_out = isinstance(exc, requests.Timeout) and not isinstance(
            exc, requests.ConnectTimeout
        )
        verb = "no answer in time from" if timed_out else "cannot reach"
        label = "Kiln at " if what == "Kiln" else ""
        return f"{verb} {label}{where} ({hint})"

    def _auth_hint(self) -> str:
        if self.connection.token:
            source = TOKEN_SOURCES.get(self.connection.token_source or "", "configuration")
            return f" (the token from {source} was refused)"
        return " (no token: run `kiln login --url URL --token TOKEN` or set KILN_TOKEN)"
