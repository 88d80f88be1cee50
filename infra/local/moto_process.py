"""moto server for the local stack (`python -m infra.local.moto_process -p PORT`), with four
speed-ups: no Nagle delay on its connections, DynamoDB answers serialized directly, a
multipart upload completed with fewer copies (its whole-object CRC kept as its parts arrive),
and DynamoDB Query on a global secondary index reads only the index partition it asks for;
and one fix: a request body is a form only on a POST (see _want_form_data_parsed), so an S3
PUT (a presigned upload) is stored as sent whatever its Content-Type. What AWS does that moto
does not (S3 event sequencers, DynamoDB's size limits) is in infra/local/moto_fidelity.py.

moto answers every Query by walking the whole table, so on the local stack a list's latency
grew with every record of every tenant, which DynamoDB's does not. Here, between writes, each
GSI is kept as partitions (hash key value -> items sorted by the index range key); a Query
with one hash condition, at most one range comparison (<, <=, >, >=) and no filter takes the
page it needs from its partition with bisect and hands moto only those items, so moto's own
code still sorts, pages, projects and answers as it always does. Any write anywhere drops the
partitions (they are rebuilt on the next such Query); any other Query is moto's, unchanged.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import io
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from moto.core.compat import HAS_CRT
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.models.utilities import dynamo_json_dump
from moto.dynamodb.responses import DynamoHandler
from moto.moto_server.werkzeug_app import BackendRequest, DomainDispatcherApplication
from moto.s3 import models as s3_models
from moto.s3.models import MultipartChecksumBuilder
from werkzeug.serving import WSGIRequestHandler

from infra.local import moto_fidelity, s3_multipart

_local = threading.local()
_lock = threading.Lock()
_generation = [0]
#: (table id, index name) -> (generation, {hash value: (sorted range values, items)} | None)
_partitions: dict[tuple[int, str], tuple[int, dict[Any, tuple[list[str], list[Any]]] | None]] = {}
#: range comparisons served fast, as moto names them
_FAST = {
    "<": "LT",
    "<=": "LE",
    ">": "GT",
    ">=": "GE",
    "LT": "LT",
    "LE": "LE",
    "GT": "GT",
    "GE": "GE",
}


def _bump(method: Callable[..., Any]) -> Callable[..., Any]:
    def forget() -> None:
        with _lock:
            _generation[0] += 1
            _partitions.clear()

    @functools.wraps(method)
    def write(*args: Any, **kwargs: Any) -> Any:
        forget()  # before: no Query keeps using the old partitions
        try:
            return method(*args, **kwargs)
        finally:
            forget()  # after: none built while the write ran survives it

    return write


def _key(value: Any) -> Any:
    return (value.type, str(value.value))


def _index_partitions(table: Table, index: Any) -> dict[Any, tuple[list[str], list[Any]]] | None:
    """The index as partitions, or None when it cannot be served fast (a range key that is
    not a string, or two items with the same range value in one partition)."""
    hash_attr = next(k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH")
    range_attrs = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
    if len(range_attrs) != 1:
        return None
    groups: dict[Any, list[tuple[str, Any]]] = {}
    for item in _ORIGINAL_ALL_ITEMS(table):
        hash_value, range_value = item.attrs.get(hash_attr), item.attrs.get(range_attrs[0])
        if hash_value is None or range_value is None:
            continue  # not in the index
        if range_value.type != "S":
            return None
        groups.setdefault(_key(hash_value), []).append((str(range_value.value), item))
    partitions = {}
    for hash_value, entries in groups.items():
        entries.sort(key=lambda entry: entry[0])
        keys = [entry[0] for entry in entries]
        if len(set(keys)) != len(keys):
            return None
        partitions[hash_value] = (keys, [entry[1] for entry in entries])
    return partitions


def _filters(expression: Any) -> bool:
    """Whether a FilterExpression was given (moto passes OpDefault for none)."""
    return expression is not None and type(expression).__name__ != "OpDefault"


def _page(table: Table, kwargs: dict[str, Any]) -> list[Any] | None:
    """The items moto needs for this Query's page, or None: let moto do it all."""
    index_name, hashes = kwargs.get("index_name"), kwargs.get("hash_key_conditions") or []
    ranges = kwargs.get("range_key_conditions") or []
    comparison = _FAST.get(kwargs.get("range_comparison") or "", kwargs.get("range_comparison"))
    if not index_name or index_name not in {i.name for i in table.global_indexes}:
        return None
    if len(hashes) != 1 or len(ranges) > 1 or _filters(kwargs.get("filter_expression")):
        return None
    if kwargs.get("filter_kwargs") or (comparison and comparison not in _FAST.values()):
        return None
    index = table.get_index(index_name)
    range_attr = next((k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"), None)
    if ranges and ranges[0][0] != range_attr:
        return None
    with _lock:
        generation = _generation[0]
        cached = _partitions.get((id(table), index_name))
    if cached is None or cached[0] != generation:
        built = _index_partitions(table, index)
        with _lock:
            if _generation[0] == generation:
                _partitions[(id(table), index_name)] = (generation, built)
        cached = (generation, built)
    if cached[1] is None:
        return None
    keys, items = cached[1].get(_key(hashes[0][1]), ([], []))
    low, high = 0, len(keys)
    if comparison:
        bound = str(kwargs["range_objs"][0].value)
        if comparison in ("LT", "LE"):
            high = (bisect.bisect_left if comparison == "LT" else bisect.bisect_right)(keys, bound)
        else:
            low = (bisect.bisect_right if comparison == "GT" else bisect.bisect_left)(keys, bound)
    forward = kwargs.get("scan_index_forward", True)
    start = kwargs.get("exclusive_start_key")
    if start:
        after = (start.get(range_attr) or {}).get("S")
        if after is None:
            return None
        if forward:
            low = max(low, bisect.bisect_right(keys, after))
        else:
            high = min(high, bisect.bisect_left(keys, after))
    limit = kwargs.get("limit")
    if limit:
        if forward:
            high = min(high, low + limit + 1)
        else:
            low = max(low, high - limit - 1)
    return items[low : max(low, high)]


def _query(original: Callable[..., Any]) -> Callable[..., Any]:
    names = (
        "hash_key", "range_comparison", "range_objs", "limit", "exclusive_start_key",
        "scan_index_forward", "projection_expressions", "index_name", "consistent_read",
        "filter_expression", "hash_key_conditions", "range_key_conditions",
    )  # fmt: skip

    @functools.wraps(original)
    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        given = dict(zip(names, args, strict=False))
        extra = {k: v for k, v in kwargs.items() if k not in names}
        given.update({k: v for k, v in kwargs.items() if k in names})
        given["filter_kwargs"] = extra
        try:
            page = _page(self, given)
        except Exception:  # the speed-up never changes an answer: moto decides
            page = None
        if page is None:
            return original(self, *args, **kwargs)
        _local.items = (self, page)
        try:
            return original(self, *args, **kwargs)
        finally:
            _local.items = None

    return query


def _all_items(self: Table) -> list[Any]:
    override = getattr(_local, "items", None)
    if override is not None and override[0] is self:
        return list(override[1])
    return _ORIGINAL_ALL_ITEMS(self)


_ORIGINAL_ALL_ITEMS = Table.all_items


#: DynamoDB answers serialized as moto 4 did (json of the wire-format attributes): moto 5's
#: generic serializer spends ~1 ms per item attribute, most of a Query's time here
_JSON_ANSWERS = ("query", "get_item", "batch_get_item", "scan", "put_item", "update_item",
                 "delete_item")  # fmt: skip


def _json_answer(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def answer(self: Any) -> Any:
        result = method(self)
        if type(result).__name__ == "DynamoResult":
            return dynamo_json_dump(result.result)
        return result

    return answer


class _RunningChecksum(MultipartChecksumBuilder):
    """A whole-object CRC of a multipart upload, kept as the parts go by, not by joining all
    parts into one more copy of the object first. The same value moto computes: CRC32, and
    for CRC64NVME without awscrt moto's own stand-in, CRC32."""

    def addPart(self, part: bytes) -> None:  # noqa: N802 (moto's name)
        if not self._incremental():
            super().addPart(part)
            return
        self._crc = binascii.crc32(part, getattr(self, "_crc", 0))
        self.part_count += 1

    def build(self) -> tuple[str, str, int] | None:
        if not self._incremental():
            return super().build()
        value = getattr(self, "_crc", 0).to_bytes(4, "big")
        return self.checksum_type, base64.b64encode(value).decode(), 1

    def _incremental(self) -> bool:
        crc32_like = self.checksum_algorithm == "CRC32" or (
            self.checksum_algorithm == "CRC64NVME" and not HAS_CRT
        )
        return self.checksum_type == "FULL_OBJECT" and crc32_like


def _complete(self: Any, body: Iterator[tuple[int, str]]) -> tuple[Any, str, Any]:
    """moto's FakeMultipart.complete with fewer copies of the whole object: the parts are
    checked first, then copied once into a buffer made at its final size (moto grows a
    bytearray part by part, then copies it to bytes)."""
    builder = s3_multipart.checksum_builder(self)
    chosen, etag = s3_multipart.checked_parts(self, body)
    total = bytearray(sum(part.contentsize for part in chosen))
    view, offset = memoryview(total), 0
    for part in chosen:
        value = part.value
        view[offset : offset + len(value)] = value
        offset += len(value)
        builder.addPart(value)
    view.release()
    return total, etag, builder.build()


#: the only method on which AWS's protocols send a form: the query protocol's actions, S3's POST
#: Object (multipart/form-data); any other body is the payload, whatever its Content-Type
_FORM_METHOD = "POST"


def _want_form_data_parsed(self: Any) -> bool:
    """werkzeug parses a body as a form whenever a Content-Type is sent: a PUT sent as
    application/x-www-form-urlencoded (urllib's default for a request with data) or
    multipart/form-data had its body read by the form parser, reached moto's S3 as an empty
    request.data, and the object was stored empty."""
    environ = self.environ
    return environ.get("REQUEST_METHOD") == _FORM_METHOD and bool(environ.get("CONTENT_TYPE"))


def _unsigned_form_body(self: Any, environ: dict[str, Any]) -> str | None:
    """moto's DomainDispatcherApplication._get_body (an unsigned request's form, read to find
    its service) without losing the body. moto read every form-urlencoded body here, whatever
    the method, under the dispatcher's lock, and put it back only when it decoded as UTF-8:
    a presigned S3 PUT of binary data sent as application/x-www-form-urlencoded lost its
    body, and moto then waited on the socket for Content-Length bytes that had already been
    read until the client gave up. Now only a POST's form is read, and the bytes read are
    always put back as they came."""
    content_type = environ.get("CONTENT_TYPE") or ""
    if environ.get("REQUEST_METHOD") != _FORM_METHOD:
        return None
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return None
    length = (environ.get("CONTENT_LENGTH") or "").strip()
    if not length.isdecimal() or int(length) == 0:
        return None
    raw = environ["wsgi.input"].read(int(length))
    environ["wsgi.input"] = io.BytesIO(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def install() -> None:
    moto_fidelity.install()
    # werkzeug writes a response's headers and body apart; with Nagle on, the body waits for
    # the client's delayed ACK (about 40 ms a request)
    WSGIRequestHandler.disable_nagle_algorithm = True
    BackendRequest.want_form_data_parsed = property(_want_form_data_parsed)  # type: ignore[assignment,method-assign]
    DomainDispatcherApplication._get_body = _unsigned_form_body  # type: ignore[method-assign]
    s3_models.MultipartChecksumBuilder = _RunningChecksum  # type: ignore[misc]
    s3_models.FakeMultipart.complete = _complete  # type: ignore[method-assign]
    for name in _JSON_ANSWERS:
        setattr(DynamoHandler, name, _json_answer(getattr(DynamoHandler, name)))
    Table.all_items = _all_items  # type: ignore[method-assign,assignment]
    Table.query = _query(Table.query)  # type: ignore[method-assign]
    for owner, name in (
        (Table, "put_item"),
        (Table, "delete_item"),
        (DynamoDBBackend, "update_item"),
        (DynamoDBBackend, "transact_write_items"),
        (DynamoDBBackend, "delete_table"),
        (DynamoDBBackend, "update_table"),
    ):
        setattr(owner, name, _bump(getattr(owner, name)))
    # --- kept state (the stack's data dir): DynamoDB, SQS and KMS restored from the store, then
    # written through to it (infra/local/state_persistence.py); before the server serves
    from infra.local import state_persistence, state_store

    if state_store.current() is None and os.environ.get("KILN_DATA_DIR"):
        state_store.open_store(Path(os.environ["KILN_DATA_DIR"]))
    if state_store.current() is not None:
        state_persistence.install()
    if state_store.current() is not None and os.environ.get("KILN_DATA_DIR"):
        # S3: object bodies as files under <data dir>/s3, streamed in and out, metadata in
        # the store (infra/local/s3_files.py); replaces _complete above with one that joins
        # the parts' files
        from infra.local import s3_files

        s3_files.install(Path(os.environ["KILN_DATA_DIR"]))
    # --- end of kept state


def main() -> None:
    from moto.server import main as moto_main

    install()
    # --- a clean stop (the stack's data dir): SIGTERM closes the state store, its last writes
    # checkpointed, then the process ends; and moto never outlives its stack (killed -9, the
    # stack cannot stop it: moto then stops itself so, within a second, freeing its port)
    import signal

    from infra.local import state_store

    def stop(signum: int, frame: object) -> None:
        try:
            store = state_store.current()
            if store is not None:
                store.close()
            logging.shutdown()
        finally:
            os._exit(0)  # not SystemExit: werkzeug's and Step Functions' threads would hold it

    def watch_parent(parent: int) -> None:
        while os.getppid() == parent:
            threading.Event().wait(1)
        os.kill(os.getpid(), signal.SIGTERM)

    import moto.server

    moto.server.signal_handler = stop  # moto's main() installs it for SIGTERM and SIGINT
    threading.Thread(
        target=watch_parent, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()
    # --- end of the clean stop
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
