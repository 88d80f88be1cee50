"""DynamoDB's limits that moto does not enforce, checked as DynamoDB checks them: a partition
key value of more than 2,048 bytes, a sort key value of more than 1,024, a number of more than
38 significant digits, and an item of more than 400 KB are a ValidationException. The local
stack's moto process and the in-process tests both apply them, so what would fail on AWS fails
here too."""

from __future__ import annotations

from typing import Any

from chalicelib.adapters.sized_model import ITEM_LIMIT, item_size

PARTITION_KEY_BYTES, SORT_KEY_BYTES = 2048, 1024
NUMBER_DIGITS = 38
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
    """A request names no key roles: the first of two values is taken for the partition key
    (the order boto3 and PynamoDB send them in), the second for the sort key."""
    for position, (name, value) in enumerate(key.items()):
        limit = PARTITION_KEY_BYTES if position == 0 else SORT_KEY_BYTES
        if _size(value) > limit:
            raise LimitExceeded(
                f"One or more parameter values were invalid: Size of key {name} exceeds the "
                "maximum allowed size"
            )


def _item(item: dict[str, Any]) -> None:
    for value in item.values():
        if "N" in value and _significant_digits(str(value["N"])) > NUMBER_DIGITS:
            raise LimitExceeded("Attempting to store more than 38 significant digits in a Number")
    if item_size(item) > ITEM_LIMIT:
        raise LimitExceeded("Item size has exceeded the maximum allowed size")


def _significant_digits(number: str) -> int:
    digits = number.lstrip("+-").lower().split("e")[0].replace(".", "")
    return len(digits.strip("0"))


def _size(value: dict[str, Any]) -> int:
    ((_kind, data),) = value.items()
    return len(data.encode("utf-8", "surrogatepass")) if isinstance(data, str) else len(str(data))
