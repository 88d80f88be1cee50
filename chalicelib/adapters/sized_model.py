"""The base of every table's model: a record DynamoDB could not store (an item is at most
400 KB, names and values together) is refused before it is written, as a 413 the faces render,
never a 500 from the write."""

from __future__ import annotations

from typing import Any

from pynamodb.models import Model

from chalicelib.errors import QuotaExceeded

ITEM_LIMIT = 400 * 1024


class RecordTooLarge(QuotaExceeded):
    """A record would be larger than a DynamoDB item may be."""


class SizedModel(Model):
    def save(self, condition: Any = None, *, add_version_condition: bool = True) -> Any:
        size = item_size(self.serialize())
        if size > ITEM_LIMIT:
            raise RecordTooLarge(
                f"the record would take {size} bytes; a record holds at most {ITEM_LIMIT} bytes "
                "(make its fields or properties smaller or fewer)"
            )
        return super().save(condition, add_version_condition=add_version_condition)


def item_size(attributes: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it: each name's UTF-8 bytes plus its value's size."""
    return sum(len(name.encode()) + _value_size(value) for name, value in attributes.items())


def _value_size(value: dict[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode("utf-8", "surrogatepass"))
    if kind == "N":
        return len(str(data)) // 2 + 2  # at most 21 bytes; this errs on the large side
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: item}) for item in data)
    if kind == "L":
        return 3 + sum(1 + _value_size(item) for item in data)
    if kind == "M":
        return 3 + item_size(data) + len(data)
    return len(str(data))
