"""The local stack's S3 keeps object bodies as files and moves them fast (issue: "The embedded
stack keeps its data and moves it fast"). Installed by infra/local/moto_process.py when the
stack has a data dir (``KILN_DATA_DIR``); without one, moto keeps bodies in memory as before.

- A PutObject of more than ``STREAM_MIN`` bytes and every UploadPart is read from the socket
  in 1 MiB pieces straight into a new blob file (aws-chunked framing taken off, MD5 and
  CRC32 computed in the same pass, the file synced) before moto sees the request; moto then
  gets an empty body and the file (``_incoming``), so a 4 GiB upload never sits in memory.
- A FakeKey's value is then a ``Body`` (infra/local/s3_blobs.py): extents of blob files.
  Completing a multipart upload joins the parts' extents, copying an object or a part range
  cuts extents: no bytes are copied; the whole-object CRC is combined from the parts' CRCs.
- A GetObject (ranged or not) answers the Body itself: werkzeug sends the headers, then each
  extent goes from its file to the socket with ``sendfile``.
- Metadata is written through to the state store and read back at start
  (infra/local/s3_state.py); bodies up to ``BLOB_MIN`` stay in the record, inline.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, cast

from moto.core.compat import HAS_CRT
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.s3 import responses as s3_responses
from moto.s3.models import FakeKey, FakeMultipart, S3Backend

from infra.local import s3_blobs, s3_multipart, s3_state
from infra.local.s3_blobs import BlobWriter, Body, crc32_combine, write_blob

STREAM_MIN = 1024 * 1024  # a PutObject body this large or larger goes to a file as it arrives
BLOB_MIN = 256 * 1024  # a body this large or larger is kept in a blob file, not inline
PIECE = 1024 * 1024  # one read from the socket
_STREAMING = ("STREAMING-",)  # x-amz-content-sha256 values of an aws-chunked body
_local = threading.local()

try:
    import crc32c  # type: ignore[import-not-found]  # noqa: F401

    _HAS_CRC32C = True
except ImportError:
    _HAS_CRC32C = False


def _crc32_like(algorithm: str) -> bool:
    """Whether moto computes this algorithm as a plain CRC32 (its stand-ins without awscrt
    and crc32c)."""
    return (
        algorithm == "CRC32"
        or (algorithm == "CRC64NVME" and not HAS_CRT)
        or (algorithm == "CRC32C" and not _HAS_CRC32C)
    )


# -- FakeKey: a value that is a Body is kept by reference ----------------------------------
_VALUE: property = FakeKey.__dict__["value"]
_ETAG: property = FakeKey.__dict__["etag"]
_read_inline = cast(Callable[[Any], bytes], _VALUE.fget)
_write_inline = cast(Callable[[Any, bytes], None], _VALUE.fset)
_moto_etag = cast(Callable[[Any], str], _ETAG.fget)
_GETSTATE = FakeKey.__getstate__
_SETSTATE = FakeKey.__setstate__


def body_of(key: Any) -> Body | None:
    """The key's Body, or None when its bytes are inline (moto's own buffer)."""
    body = key.__dict__.get("_kiln_body")
    return body if isinstance(body, Body) else None


def _get_value(self: FakeKey) -> Any:
    body = body_of(self)
    if body is not None:
        s3_blobs.hold(body.names())  # not swept while this request uses it
        return body
    return _read_inline(self)


def _set_value(self: FakeKey, new: Any) -> None:
    if isinstance(new, str):
        new = new.encode()
    if not isinstance(new, Body) and len(new) >= BLOB_MIN:
        new = write_blob(bytes(new))
    if isinstance(new, Body):
        s3_blobs.hold(new.names())
        _write_inline(self, b"")
        self.__dict__["_kiln_body"] = new
        self.contentsize = new.size
        if self.__dict__.get("_etag") is None and new.md5 is not None:
            self._etag = new.md5
        return
    self.__dict__["_kiln_body"] = None
    _write_inline(self, new)


def _get_etag(self: FakeKey) -> str:
    body = body_of(self)
    if body is not None and self._etag is None:
        self._etag = body.digest()
    return _moto_etag(self)


def _getstate(self: FakeKey) -> dict[str, Any]:
    """A key's state without its bytes when they are in blob files (its Body is kept)."""
    if body_of(self) is None:
        return dict(_GETSTATE(self))
    state = self.__dict__.copy()
    state["value"] = b""
    state.pop("_value_buffer", None)
    state.pop("lock", None)
    return state


def _setstate(self: FakeKey, state: dict[str, Any]) -> None:
    _SETSTATE(self, state)
    body = state.get("_kiln_body")
    if isinstance(body, Body):
        self.__dict__["_kiln_body"] = body
        self.contentsize = body.size


def _as_body(key: FakeKey) -> Body:
    """A part's bytes as a Body (an inline part is written to a blob first)."""
    body = body_of(key)
    if body is None:
        data = bytes(_read_inline(key))
        body = write_blob(data) if data else Body([], hashlib.md5(b"").hexdigest(), 0)
        _set_value(key, body)
    return body


def _complete(self: FakeMultipart, parts: Iterator[tuple[int, str]]) -> tuple[Any, str, Any]:
    """moto's FakeMultipart.complete with no bytes copied: the object is the parts' extents
    one after the other; its ETag the MD5 of the parts' MD5s and "-N", as S3's; its
    whole-object CRC combined from the parts' CRCs (moto's value, computed without reading)."""
    builder = s3_multipart.checksum_builder(self)
    chosen, etag = s3_multipart.checked_parts(self, parts)
    bodies = [_as_body(part) for part in chosen]
    value = Body.join(bodies)
    # held: moto drops the upload (its parts) before the object that takes their files is in
    # the bucket, and a sweep in between must not take them
    s3_blobs.hold(value.names())
    if builder.checksum_type == "FULL_OBJECT" and _crc32_like(builder.checksum_algorithm):
        crc = 0
        for body in bodies:
            crc = crc32_combine(crc, body.checksum32(), body.size)
        value.crc32 = crc
        checksum: tuple[str, str, int] | None = (
            builder.checksum_type,
            base64.b64encode(crc.to_bytes(4, "big")).decode(),
            1,
        )
    else:  # other checksums: moto's, from each part's bytes (a part at a time)
        for body in bodies:
            builder.addPart(body.read())
        checksum = builder.build()
    return value, etag, checksum


def _compute_checksum(body: Any, algorithm: str, encode_base64: bool = True) -> bytes:
    if isinstance(body, Body):
        body = body.read()
    return _COMPUTE_CHECKSUM(body, algorithm, encode_base64)


_COMPUTE_CHECKSUM = s3_responses.compute_checksum


# -- the streamed request body, handed to moto's put_object / upload_part ------------------
def _take_incoming() -> Body | None:
    body: Body | None = getattr(_local, "incoming", None)
    _local.incoming = None
    return body


def _with_incoming(method: Callable[..., Any], position: int) -> Callable[..., Any]:
    """``method`` whose body argument (at ``position``), empty because the middleware read
    the body into a file, is that file's Body."""

    @functools.wraps(method)
    def call(self: S3Backend, *args: Any, **kwargs: Any) -> Any:
        value = args[position] if len(args) > position else kwargs.get("value")
        if not value and getattr(_local, "incoming", None) is not None:
            body = _take_incoming()
            if len(args) > position:
                args = (*args[:position], body, *args[position + 1 :])
            else:
                kwargs["value"] = body
        return method(self, *args, **kwargs)

    return call


class _Bounded:
    """The request body as sent: at most ``limit`` bytes of ``stream`` (all, when None)."""

    def __init__(self, stream: Any, limit: int | None) -> None:
        self.stream, self.left = stream, limit
        self.buffer = memoryview(bytearray(PIECE))

    def _room(self, want: int) -> int:
        return want if self.left is None else min(want, self.left)

    def readline(self) -> bytes:
        line = bytes(self.stream.readline(self._room(64 * 1024)))
        if self.left is not None:
            self.left -= len(line)
        return line

    def copy(self, writer: BlobWriter, count: int | None) -> None:
        """``count`` bytes (all that is left, when None) into ``writer``."""
        while count is None or count > 0:
            want = self._room(PIECE if count is None else min(PIECE, count))
            got = self.stream.readinto(self.buffer[:want]) if want else 0
            if not got:
                if count is None:
                    return
                raise ConnectionError("the client sent less than it announced")
            writer.write(self.buffer[:got])
            if self.left is not None:
                self.left -= got
            if count is not None:
                count -= got


def _streamable(environ: dict[str, Any]) -> bool:
    """Whether this request is an object upload the middleware reads into a file: a path-style
    PutObject of at least STREAM_MIN bytes or an UploadPart, whose checksum (if one is asked
    for) is sent or one the middleware computes."""
    if environ.get("REQUEST_METHOD") != "PUT" or "HTTP_X_AMZ_COPY_SOURCE" in environ:
        return False
    host = environ.get("HTTP_HOST", "").rsplit(":", 1)[0]
    path = environ.get("PATH_INFO", "").lstrip("/")
    if host.endswith(".localhost"):  # virtual-host style: <bucket>.localhost/<key>
        if not path:
            return False
    elif host in ("localhost", "[::1]") or host.replace(".", "").isdigit():  # path style
        bucket, _, key = path.partition("/")
        if not bucket or not key:
            return False
    else:
        return False  # an AWS-style host name: left to moto
    raw_query = environ.get("QUERY_STRING", "")
    query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
    part = "uploadId" in query and "partNumber" in query
    if not part and (set(query) & {"acl", "tagging", "retention", "legal-hold", "uploadId"}):
        return False
    if "content-length=" in raw_query.lower():  # a presigned URL that signed the length
        return False
    chunked = str(environ.get("HTTP_X_AMZ_CONTENT_SHA256", "")).startswith(_STREAMING)
    length = environ.get("HTTP_X_AMZ_DECODED_CONTENT_LENGTH" if chunked else "CONTENT_LENGTH")
    if not str(length or "").strip().isdecimal() and not environ.get("wsgi.input_terminated"):
        return False
    if not part and int(length or STREAM_MIN) < STREAM_MIN:
        return False
    algorithm = str(environ.get("HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM", "")).upper()
    if algorithm and f"HTTP_X_AMZ_CHECKSUM_{algorithm}" not in environ:
        trailer = str(environ.get("HTTP_X_AMZ_TRAILER", "")).lower()
        computable = _crc32_like(algorithm) or algorithm in ("SHA1", "SHA256")
        return f"x-amz-checksum-{algorithm.lower()}" in trailer or computable
    return True


def _receive(environ: dict[str, Any]) -> None:
    """Read the body into a new blob, then hand moto an empty body and the blob."""
    chunked = str(environ.get("HTTP_X_AMZ_CONTENT_SHA256", "")).startswith(_STREAMING)
    terminated = bool(environ.get("wsgi.input_terminated"))
    length = None if terminated else int(environ.get("CONTENT_LENGTH") or 0)
    reader = _Bounded(environ["wsgi.input"], length)
    algorithm = str(environ.get("HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM", "")).upper()
    writer = BlobWriter()
    if algorithm in ("SHA1", "SHA256"):
        writer.extra.append(hashlib.new(algorithm.lower(), usedforsecurity=False))
    trailers: dict[str, str] = {}
    try:
        if chunked:
            while True:
                line = reader.readline()
                if not line:
                    raise ConnectionError("the aws-chunked body ended early")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    break
                reader.copy(writer, size)
                reader.readline()  # the chunk's CRLF
            while (line := reader.readline()).strip():
                name, _, value = line.decode("latin-1").partition(":")
                trailers[name.strip().lower()] = value.strip()
        else:
            reader.copy(writer, length)
        expected = environ.get("HTTP_X_AMZ_DECODED_CONTENT_LENGTH") if chunked else None
        if expected is not None and str(expected).strip() != str(writer.size):
            raise ConnectionError("the aws-chunked body is not its decoded length")
        extra = writer.extra[0].digest() if writer.extra else None
        body = writer.finish()
    except BaseException:
        writer.discard()
        raise
    header = f"HTTP_X_AMZ_CHECKSUM_{algorithm}"
    if algorithm and header not in environ:
        sent = trailers.get(f"x-amz-checksum-{algorithm.lower()}")
        if sent is None and extra is not None:
            sent = base64.b64encode(extra).decode()
        elif sent is None:
            sent = base64.b64encode((body.crc32 or 0).to_bytes(4, "big")).decode()
        environ[header] = sent
    environ["wsgi.input"] = io.BytesIO(b"")
    environ["CONTENT_LENGTH"] = "0"
    if "HTTP_X_AMZ_DECODED_CONTENT_LENGTH" in environ:
        environ["HTTP_X_AMZ_DECODED_CONTENT_LENGTH"] = "0"
    _local.incoming = body


class _Answer:
    """The app's answer, iterated by werkzeug; when it is done (a download sent), the blobs
    the request used may be swept again."""

    def __init__(self, inner: Iterable[bytes]) -> None:
        self.inner = inner

    def __iter__(self) -> Iterator[bytes]:
        yield from self.inner
        s3_blobs.release()  # sent: as soon as can be (werkzeug closes after a drain)

    def close(self) -> None:
        try:
            close = getattr(self.inner, "close", None)
            if close is not None:
                close()
        finally:
            s3_blobs.release()


_CALL: list[Callable[..., Any]] = []


def _call(self: DomainDispatcherApplication, environ: dict[str, Any], start: Any) -> Any:
    """moto's WSGI entry with uploads streamed to files and every S3 change written through
    to the state store before the answer goes out."""
    s3_blobs.serve_from(environ.get("werkzeug.socket"))
    _local.incoming = None
    try:
        if _streamable(environ) and getattr(self.get_application(environ), "service", "") == "s3":
            _receive(environ)
        answer = _CALL[0](self, environ, start)
        s3_state.flush()
    except BaseException:
        s3_state.forget()
        s3_blobs.release()
        raise
    finally:
        left = _take_incoming()
        if left is not None:  # moto refused the upload (no such bucket or upload): no key has it
            s3_blobs.discard(left)
    return _Answer(answer)


def install(data_dir: Path) -> None:
    """Bodies as files under ``<data_dir>/s3`` and S3's metadata in the state store; moto's
    state read back from it (call before the server answers anything)."""
    s3_blobs.configure(data_dir)
    FakeKey.value = property(_get_value, _set_value)  # type: ignore[method-assign,assignment]
    FakeKey.etag = property(_get_etag)  # type: ignore[method-assign,assignment]
    FakeKey.__getstate__ = _getstate  # type: ignore[method-assign]
    FakeKey.__setstate__ = _setstate  # type: ignore[method-assign]
    FakeMultipart.complete = _complete  # type: ignore[method-assign,assignment]
    S3Backend.put_object = _with_incoming(S3Backend.put_object, 2)  # type: ignore[method-assign]
    S3Backend.upload_part = _with_incoming(S3Backend.upload_part, 3)  # type: ignore[method-assign]
    s3_responses.compute_checksum = _compute_checksum
    _CALL[:] = [DomainDispatcherApplication.__call__]
    DomainDispatcherApplication.__call__ = _call  # type: ignore[method-assign,assignment]
    s3_state.install(body_of)
    s3_state.restore()
