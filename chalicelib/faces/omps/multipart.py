"""The uploaded file of an OMPS push, read from the raw multipart body by werkzeug's form
parser, as Flask (upstream's framework) reads ``request.files``: a part is a file when its
Content-Disposition has a ``filename``; no part ``file`` among them is ``No field "file" in
uploaded data``, an empty file name ``No selected "file" in uploaded data`` (what a browser
sends when no file was chosen). A body that is not multipart has no files."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge as TooManyParts
from werkzeug.formparser import parse_form_data

from chalicelib.domain.omps.errors import OMPSExpectedFileError, RequestEntityTooLarge
from chalicelib.faces.omps.routing import STANDARD, OmpsCall

FIELD = "file"
#: Flask's default cap on the parts of one form (werkzeug answers 413 past it)
MAX_FORM_PARTS = 1000


@dataclasses.dataclass(frozen=True)
class UploadedFile:
    filename: str
    content: bytes


def uploaded_file(call: OmpsCall) -> UploadedFile:
    """The file sent in the multipart field ``file``."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": call.headers.get("content-type", ""),
        "CONTENT_LENGTH": str(len(call.raw_body)),
        "wsgi.input": io.BytesIO(call.raw_body),
    }
    try:
        _stream, _form, files = parse_form_data(environ, max_form_parts=MAX_FORM_PARTS)
    except TooManyParts:
        raise RequestEntityTooLarge(STANDARD[413][1]) from None
    if FIELD not in files:
        raise OMPSExpectedFileError(f'No field "{FIELD}" in uploaded data')
    upload = files[FIELD]
    if not upload.filename:
        raise OMPSExpectedFileError(f'No selected "{FIELD}" in uploaded data')
    return UploadedFile(upload.filename, upload.stream.read())
