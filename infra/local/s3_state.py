"""S3's metadata in the local stack's state store (infra/local/state_store.py), written through
before each answer goes out and read back when moto starts, so buckets, objects and
multipart uploads survive a stop, a restart and a ``kill -9`` (their bodies are blob files:
infra/local/s3_files.py, s3_blobs.py).

The backend's S3 methods that change something note what they changed (a bucket, an object
name, an upload, a part) for the request's thread; at the end of the request (and before moto
sends an S3 event about it) ``flush`` writes the after-image of each in one batch:

- ("s3-bucket", "<account>\\0<bucket>"): the bucket's attributes without its objects and
  uploads (notification configuration, CORS, versioning, policy, ...) and its tags;
- ("s3-object", "<account>\\0<bucket>\\0<key>"): every version of the key (FakeKey pickled
  without its bytes when they are in blob files) with its tags;
- ("s3-multipart", "<account>\\0<bucket>\\0<upload id>"): an upload in progress, without
  its parts; ("s3-part", "<...upload id>\\0<part number>"): each part uploaded.

Blob files no longer referenced (an object deleted or overwritten, an upload aborted) are
deleted by a sweep after the batch is written, and at start.
"""

from __future__ import annotations

import functools
import logging
import pickle
import threading
from bisect import insort
from collections.abc import Callable
from typing import Any, cast

from moto.s3 import notifications
from moto.s3.models import FakeBucket, FakeMultipart, S3Backend, s3_backends
from moto.utilities.utils import get_partition

from infra.local import s3_blobs, state_store
from infra.local.s3_blobs import Body

LOG = logging.getLogger(__name__)
_local = threading.local()
_flush_lock = threading.Lock()
_body_of: list[Callable[[Any], Body | None]] = []
#: fields of a FakeBucket kept elsewhere: its objects and uploads have records of their own
_NOT_BUCKET = ("keys", "multiparts")


def _dirty() -> dict[str, set[tuple[Any, ...]]]:
    dirty: dict[str, set[tuple[Any, ...]]] | None = getattr(_local, "dirty", None)
    if dirty is None:
        dirty = _local.dirty = {"bucket": set(), "object": set(), "upload": set(), "part": set()}
    return dirty


def _note(kind: str, *what: Any) -> None:
    _dirty()[kind].add(what)


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _noting(
    method: Callable[..., Any], note: Callable[..., None], before: bool = False
) -> Callable[..., Any]:
    """``method``, noting what it changed when it returns (and, ``before``, when called: an
    object is noted before moto sends the event about it, see ``_flush_before``)."""

    @functools.wraps(method)
    def call(self: S3Backend, *args: Any, **kwargs: Any) -> Any:
        if before:
            note(self, None, args, kwargs)
        result = method(self, *args, **kwargs)
        note(self, result, args, kwargs)
        return result

    return call


def _object(self: S3Backend, _: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    _note("object", self, _arg(args, kwargs, 0, "bucket_name"), _arg(args, kwargs, 1, "key_name"))
    _local.sweep = True  # an object overwritten or deleted may leave a blob unreferenced


def _tagged(self: S3Backend, key: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    key = _arg(args, kwargs, 0, "key")
    _note("object", self, key.bucket_name, key.name)


def _upload(self: S3Backend, result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    upload = (
        result.id if isinstance(result, FakeMultipart) else _arg(args, kwargs, 1, "multipart_id")
    )
    _note("upload", self, _arg(args, kwargs, 0, "bucket_name"), upload)
    _local.sweep = True


def _part(self: S3Backend, _: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    _note("part", self, args[0], args[1], int(args[2]))
    _local.sweep = True  # a part uploaded again replaces the one before


def _bucket(self: S3Backend, _: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    _note("bucket", self, _arg(args, kwargs, 0, "bucket_name"))
    _local.sweep = True


_OBJECT_METHODS = ("put_object", "delete_object", "delete_object_tagging", "put_object_acl",
                   "put_object_legal_hold", "put_object_retention", "restore_object")  # fmt: skip
_UPLOAD_METHODS = ("create_multipart_upload", "complete_multipart_upload",
                   "abort_multipart_upload")  # fmt: skip
_PART_METHODS = ("upload_part", "upload_part_copy")
_BUCKET_PREFIXES = ("create_bucket", "delete_bucket", "put_bucket_", "delete_bucket_",
                    "put_public_access_block", "delete_public_access_block",
                    "put_object_lock_configuration")  # fmt: skip


def install(body_of: Callable[[Any], Body | None]) -> None:
    """Note every change S3's backend makes (``body_of``: a key's Body, or None)."""
    _body_of[:] = [body_of]
    for name in _OBJECT_METHODS:
        setattr(S3Backend, name, _noting(getattr(S3Backend, name), _object, before=True))
    S3Backend.put_object_tagging = _noting(S3Backend.put_object_tagging, _tagged)  # type: ignore[method-assign]
    for name in _UPLOAD_METHODS:
        setattr(S3Backend, name, _noting(getattr(S3Backend, name), _upload))
    for name in _PART_METHODS:
        setattr(S3Backend, name, _noting(getattr(S3Backend, name), _part))
    for name in dir(S3Backend):
        if name.startswith(_BUCKET_PREFIXES) and callable(getattr(S3Backend, name)):
            setattr(S3Backend, name, _noting(getattr(S3Backend, name), _bucket))
    notifications.send_event = _flush_before(notifications.send_event)


def _flush_before(send: Callable[..., Any]) -> Callable[..., Any]:
    """moto's send_event, after what the request changed so far is written: an S3 event
    (kept in SQS's state) never names an object a kill then loses."""

    @functools.wraps(send)
    def send_event(*args: Any, **kwargs: Any) -> Any:
        flush(sweep=False)
        return send(*args, **kwargs)

    return send_event


def forget() -> None:
    """The request failed before its answer: nothing it noted is written (it is written by
    the next request that changes the same things)."""
    _local.dirty = None
    _local.sweep = False


def flush(sweep: bool = True) -> None:
    """Write what this request changed (one batch), then (``sweep``) delete the blobs it left
    unreferenced."""
    dirty: dict[str, set[tuple[Any, ...]]] | None = getattr(_local, "dirty", None)
    _local.dirty = None
    if sweep:
        sweep, _local.sweep = getattr(_local, "sweep", False), False
    store = state_store.current()
    if store is None or not dirty or not any(dirty.values()):
        if sweep:
            sweep_blobs()
        return
    with _flush_lock, store.batch():
        for backend, bucket in dirty["bucket"]:
            _write_bucket(store, backend, bucket)
        for backend, bucket, name in dirty["object"]:
            _write_object(store, backend, bucket, name)
        for backend, bucket, upload in dirty["upload"]:
            _write_upload(store, backend, bucket, upload)
        for backend, bucket, upload, number in dirty["part"]:
            _write_part(store, backend, bucket, upload, number)
    if sweep:
        sweep_blobs()


def _bucket_of(backend: S3Backend, name: str) -> FakeBucket | None:
    return backend.buckets.get(name)


def _write_bucket(store: state_store.StateStore, backend: S3Backend, name: str) -> None:
    prefix = f"{backend.account_id}\0{name}"
    bucket = _bucket_of(backend, name)
    if bucket is None:
        store.delete("s3-bucket", prefix)
        for kind in ("s3-object", "s3-multipart", "s3-part"):
            store.delete_prefix(kind, prefix + "\0")
        return
    attributes = {k: v for k, v in bucket.__dict__.items() if k not in _NOT_BUCKET}
    tags = backend.tagger.list_tags_for_resource(bucket.arn)["Tags"]
    store.put("s3-bucket", prefix, pickle.dumps({"attributes": attributes, "tags": tags}))


def _write_object(store: state_store.StateStore, backend: S3Backend, bucket: str, key: str) -> None:
    record = f"{backend.account_id}\0{bucket}\0{key}"
    found = _bucket_of(backend, bucket)
    versions = found.keys.getlist(key, []) if found is not None else []
    if not versions:
        store.delete("s3-object", record)
        return
    kept = []
    for version in versions:
        arn = getattr(version, "arn", None)
        tags = backend.tagger.list_tags_for_resource(arn)["Tags"] if arn else []
        kept.append((version, tags))
    store.put("s3-object", record, pickle.dumps(kept))


def _write_upload(
    store: state_store.StateStore, backend: S3Backend, bucket: str, upload: str
) -> None:
    record = f"{backend.account_id}\0{bucket}\0{upload}"
    found = _bucket_of(backend, bucket)
    multipart = found.multiparts.get(upload) if found is not None else None
    if multipart is None:
        store.delete("s3-multipart", record)
        store.delete_prefix("s3-part", record + "\0")
        return
    state = {k: v for k, v in multipart.__dict__.items() if k not in ("parts", "partlist")}
    store.put("s3-multipart", record, pickle.dumps(state))


def _write_part(
    store: state_store.StateStore, backend: S3Backend, bucket: str, upload: str, number: int
) -> None:
    record = f"{backend.account_id}\0{bucket}\0{upload}\0{number:05d}"
    found = _bucket_of(backend, bucket)
    multipart = found.multiparts.get(upload) if found is not None else None
    part = multipart.parts.get(number) if multipart is not None else None
    if part is None:
        store.delete("s3-part", record)
    else:
        store.put("s3-part", record, pickle.dumps(part))


def _live() -> set[str]:
    """Every blob an object, a version or a part in memory refers to."""
    body_of = _body_of[0]
    live: set[str] = set()

    def add(key: Any) -> None:
        body = body_of(key)
        if body is not None:
            live.update(body.names())
        multipart = getattr(key, "multipart", None)
        if multipart is not None:
            for part in list(multipart.parts.values()):
                body = body_of(part)
                if body is not None:
                    live.update(body.names())

    for account in list(s3_backends.keys()):
        for backend in list(s3_backends[account].values()):
            for bucket in list(backend.buckets.values()):
                for _, versions in list(bucket.keys.iterlists()):
                    for version in versions:
                        add(getattr(version, "key", version))  # a delete marker's key
                for multipart in list(bucket.multiparts.values()):
                    for part in list(multipart.parts.values()):
                        add(part)
    return live


def sweep_blobs() -> int:
    """Delete the blob files nothing refers to any more."""
    with s3_blobs.lock():
        return s3_blobs.sweep(_live())


def restore() -> None:
    """Read S3's buckets, objects and uploads back from the store into moto's backends,
    then delete blob files no record refers to (an upload cut short by a kill)."""
    store = state_store.current()
    if store is None:
        return
    buckets: dict[tuple[str, str], tuple[S3Backend, FakeBucket]] = {}
    for record, value in store.items("s3-bucket"):
        account, name = record.split("\0")
        saved = pickle.loads(value)
        region = saved["attributes"]["region_name"]
        backend = s3_backends[account][get_partition(region)]
        bucket = FakeBucket(name, account, region)  # type: ignore[abstract]
        bucket.__dict__.update(saved["attributes"])
        backend.buckets[name] = bucket
        if saved["tags"]:
            backend.tagger.tag_resource(bucket.arn, saved["tags"])
        buckets[(account, name)] = (backend, bucket)
    for record, value in store.items("s3-object"):
        account, name, key = record.split("\0", 2)
        if (account, name) not in buckets:
            continue
        backend, bucket = buckets[(account, name)]
        versions = pickle.loads(value)
        bucket.keys.setlist(key, [version for version, _ in versions])
        for version, tags in versions:
            if tags and getattr(version, "arn", None):
                backend.tagger.tag_resource(version.arn, tags)
    for record, value in store.items("s3-multipart"):
        account, name, upload = record.split("\0")
        if (account, name) in buckets:
            restored = cast(FakeMultipart, FakeMultipart.__new__(FakeMultipart))
            restored.__dict__.update(pickle.loads(value), parts={}, partlist=[])
            buckets[(account, name)][1].multiparts[upload] = restored
    for record, value in store.items("s3-part"):
        account, name, upload, number = record.split("\0")
        found = buckets.get((account, name))
        multipart = found[1].multiparts.get(upload) if found else None
        if multipart is not None:
            multipart.parts[int(number)] = pickle.loads(value)
            insort(multipart.partlist, int(number))
    removed = sweep_blobs()
    LOG.info("S3: %d buckets read back, %d unreferenced blob files deleted", len(buckets), removed)
