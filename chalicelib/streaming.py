"""Streaming routes: the types a data route's handler works with, outside Chalice's event model.

A streaming route is served by the local HTTP front (infra/local/front.py) directly, without
building a Lambda event: its request body is read piece by piece (`StreamRequest.body.read(n)`)
and its response body may be an iterable of byte strings, so large uploads and downloads never
sit whole in memory. Kiln's Chalice-side code implements handlers with these types only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import BinaryIO


class IncompleteBody(OSError):
    """The request body ended (client closed, malformed chunk) before its declared end."""


@dataclasses.dataclass
class StreamRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-case
    params: dict[str, str]  # the route regex's named groups
    body: BinaryIO  # read(n) gives the de-chunked body; raises IncompleteBody if cut short
    content_length: int | None  # None for a chunked body


@dataclasses.dataclass
class StreamResponse:
    status: int
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    # bytes: sent in one write with Content-Length. An iterable: sent with the handler's
    # Content-Length header if it set one, else chunked.
    body: bytes | Iterable[bytes] = b""


Handler = Callable[[StreamRequest], StreamResponse]
# (HTTP method, regex fully matching the URL path with named groups, handler)
StreamingRoute = tuple[str, str, Handler]
