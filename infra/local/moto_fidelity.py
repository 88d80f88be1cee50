"""Where the local stack's moto behaves as AWS does and plain moto does not (installed by
infra/local/moto_process.py):

- S3 event notifications carry each object's ``sequencer``, increasing per event, as S3's do
  (moto's have none), so the upload handler's ordering of events is exercised locally;
- DynamoDB refuses a key of more than 2,048 bytes and an item of more than 400 KB with a
  ValidationException (infra/local/dynamodb_limits.py), as DynamoDB does;
- DynamoDB writes are atomic: moto checks a write's condition and then applies it, and two
  requests on two server threads could both pass the check; here writes take one lock, so a
  conditional put (a build slot's reservation, a versioned save) wins once, as on AWS.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

from moto.dynamodb.exceptions import MockValidationException
from moto.dynamodb.responses import DynamoHandler
from moto.s3 import notifications

from infra.local import dynamodb_limits, moto_kms

_LIMITED = {
    "get_item": "GetItem",
    "put_item": "PutItem",
    "delete_item": "DeleteItem",
    "update_item": "UpdateItem",
    "batch_write_item": "BatchWriteItem",
}
_WRITES = ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items")
_write_lock = threading.Lock()
_sequence_lock = threading.Lock()
_last = [0]


def next_sequencer() -> str:
    """An uppercase hex string greater than every one before it in this process (S3's are
    compared right-padded with zeros to one length: these all have 20 digits)."""
    with _sequence_lock:
        _last[0] = max(_last[0] + 1, time.time_ns())
        return f"{_last[0]:020X}"


def _with_sequencer(original: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    @functools.wraps(original)
    def event(*args: Any, **kwargs: Any) -> dict[str, Any]:
        body = original(*args, **kwargs)
        for record in body.get("Records", []):
            record["s3"]["object"]["sequencer"] = next_sequencer()
        return body

    return event


def _limited(operation: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def checked(self: DynamoHandler) -> Any:
        try:
            dynamodb_limits.check(operation, self.body if isinstance(self.body, dict) else {})
        except dynamodb_limits.LimitExceeded as exc:
            raise MockValidationException(str(exc)) from None
        return method(self)

    return checked


def _atomic(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def write(self: DynamoHandler) -> Any:
        with _write_lock:
            return method(self)

    write.kiln_atomic = True  # type: ignore[attr-defined]
    return write


def atomic_dynamodb_writes() -> None:
    """One DynamoDB write at a time in this process (idempotent)."""
    for name in _WRITES:
        method = getattr(DynamoHandler, name)
        if not getattr(method, "kiln_atomic", False):
            setattr(DynamoHandler, name, _atomic(method))


def install() -> None:
    atomic_dynamodb_writes()
    moto_kms.install()  # KMS Sign with MessageType=DIGEST signs the digest as given
    notifications._get_s3_event = _with_sequencer(notifications._get_s3_event)  # type: ignore[assignment]
    for name, operation in _LIMITED.items():
        setattr(DynamoHandler, name, _limited(operation, getattr(DynamoHandler, name)))
