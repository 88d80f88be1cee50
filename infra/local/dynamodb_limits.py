"""DynamoDB's limits that moto does not enforce, checked as DynamoDB checks them: a key value of
more than 2,048 bytes and an item of more than 400 KB are a ValidationException. The local
stack's moto process and the in-process tests both apply them, so what would fail on AWS fails
here too."""

from __future__ import annotations

from typing import Any

from chalicelib.adapters.sized_model import ITEM_LIMIT, item_size

#: a partition key's limit (a sort key's is 1,024; a request names no roles, so the larger)
KEY_BYTES = 2048
_KEYED = ("GetItem", "DeleteItem", "UpdateItem")


class LimitExceeded(ValueError):
    """What DynamoDB's ValidationException would say."""


def check(operation: str, params: dict[str, Any]) -> None:
    """Raise LimitExceeded if DynamoDB would refuse this request for its sizes."""
    if operation in _KEYED:
        _key(params.get("Key") or {})
    elif operation == "PutItem":
        _item(params.get("Item") or {})
    elif operation == "BatchWriteItem":
        for requests in (params.get("RequestItems") or {}).values():
            for request in requests:
                if "PutRequest" in request:
                    _item(request["PutRequest"].get("Item") or {})
                if "DeleteRequest" in request:
                    _key(request["DeleteRequest"].get("Key") or {})


def _key(key: dict[str, Any]) -> None:
    for name, value in key.items():
        if _size(value) > KEY_BYTES:
            raise LimitExceeded(
                f"One or more parameter values were invalid: Size of key {name} exceeds the "
                "maximum allowed size"
            )


def _item(item: dict[str, Any]) -> None:
    if item_size(item) > ITEM_LIMIT:
        raise LimitExceeded("Item size has exceeded the maximum allowed size")


def _size(value: dict[str, Any]) -> int:
    ((_kind, data),) = value.items()
    return len(data.encode("utf-8", "surrogatepass")) if isinstance(data, str) else len(str(data))
