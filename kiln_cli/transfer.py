"""Files moved to and from Kiln in pieces, never whole in memory, with a progress bar: uploads
stream the file as the request body; downloads stream the answer to disk and can continue a
partial file with an HTTP Range request."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from pathlib import Path

import requests

from kiln_cli.client import KilnClient
from kiln_cli.errors import BadInput, Unreachable
from kiln_cli.output import Output

CHUNK = 1 << 20


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of the file's content (read in pieces)."""
    try:
        with path.open("rb") as source:
            return hashlib.file_digest(source, algorithm).hexdigest()
    except ValueError:
        raise BadInput(f"unknown hash algorithm {algorithm!r}") from None


def upload(
    client: KilnClient,
    method: str,
    url: str,
    path: Path,
    output: Output,
    *,
    presigned: bool = False,
    content_type: str = "application/octet-stream",
) -> requests.Response:
    """Send ``path`` as the body of ``method url`` with its Content-Length, read as sent."""
    size = path.stat().st_size
    headers = {"Content-Type": content_type, "Content-Length": str(size)}
    with output.transfer_progress() as progress, path.open("rb") as source:
        task = progress.add_task(f"upload {path.name}", total=size)
        body = progress.wrap_file(source, total=size, task_id=task)
        if presigned:
            return client.external(method, url, data=body, headers=headers)
        return client.call(method, url, data=body, headers=headers)


@dataclasses.dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    resumed_from: int  # bytes that were already there (0: a whole download)
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)  # the answer's


def download(
    client: KilnClient,
    url: str,
    target: Path,
    output: Output,
    *,
    presigned: bool = False,
    resume: bool = False,
    expected_size: int | None = None,
) -> Downloaded:
    """GET ``url`` into ``target``. ``resume``: a partial ``target`` is continued from its size
    (Range: bytes=<size>-); a server that answers 200 instead gets the whole file rewritten."""
    start = target.stat().st_size if resume and target.exists() else 0
    if expected_size is not None and start > expected_size:
        start = 0  # longer than the whole: not a part of it
    if expected_size is not None and start == expected_size and start > 0:
        return Downloaded(target, start, start)
    headers = {"Accept": "application/octet-stream"}
    if start:
        headers["Range"] = f"bytes={start}-"
    send = client.external if presigned else client.call
    response = send("GET", url, headers=headers, stream=True, timeout=(10.0, 300.0))
    with response:
        if start and response.status_code != 206:
            start = 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else expected_size
        target.parent.mkdir(parents=True, exist_ok=True)
        with (
            output.transfer_progress() as progress,
            target.open("ab" if start else "wb") as sink,
        ):
            task = progress.add_task(f"download {target.name}", total=total, completed=start)
            try:
                for chunk in response.iter_content(CHUNK):
                    sink.write(chunk)
                    progress.advance(task, len(chunk))
            except requests.RequestException as exc:
                again = "; run the same command again to continue it" if resume else ""
                raise Unreachable(
                    f"the download of {target.name} broke off ({exc.__class__.__name__}){again}"
                ) from None
    return Downloaded(target, target.stat().st_size, start, response.headers)
