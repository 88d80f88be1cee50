"""The query of GET /v2/images, read as Glance reads it: paging, sort and filters, with 400 for a
bad key, value or operator. Unknown filter names filter on custom properties, as in Glance."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import re
from collections.abc import Callable
from typing import Any

from chalicelib.adapters.glance_models import GlanceImageModel
from chalicelib.domain.glance.access import parse_time
from chalicelib.domain.glance.image_fields import VISIBILITIES
from chalicelib.errors import BadRequest

DEFAULT_LIMIT, MAX_LIMIT = 25, 1000
#: Glance's sort keys: any other is 400
SORT_KEYS = (
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
)
#: newest first, ties by id: the order the list indexes keep
DEFAULT_SORT = (("created_at", "desc"), ("id", "desc"))
MEMBER_STATUSES = ("accepted", "pending", "rejected", "all")
TIME_OPERATORS = ("gt", "gte", "lt", "lte", "neq", "eq")
IN_FILTERS = ("id", "name", "status", "container_format", "disk_format")
PAGING = ("limit", "marker", "sort", "sort_key", "sort_dir", "member_status", "visibility")
Query = dict[str, list[str]]
Test = Callable[[GlanceImageModel], bool]


@dataclasses.dataclass
class ListQuery:
    limit: int = DEFAULT_LIMIT
    marker: str | None = None
    sort: tuple[tuple[str, str], ...] = DEFAULT_SORT
    visibility: str | None = None
    member_status: str = "accepted"
    tests: list[Test] = dataclasses.field(default_factory=list)

    def matches(self, image: GlanceImageModel) -> bool:
        return all(test(image) for test in self.tests)

    def sort_key(self) -> Callable[[GlanceImageModel], Any]:
        def compare(a: GlanceImageModel, b: GlanceImageModel) -> int:
            for key, direction in self.sort:
                left, right = _value(a, key), _value(b, key)
                if left == right:
                    continue
                if left is None or right is None:  # nulls first ascending, as SQL sorts them
                    order = -1 if left is None else 1
                else:
                    order = -1 if left < right else 1
                return order if direction == "asc" else -order
            return 0

        return functools.cmp_to_key(compare)


def _value(image: GlanceImageModel, key: str) -> Any:
    return {"created_at": image.created, "updated_at": image.updated}.get(key) or getattr(
        image, key, None
    )


def parse(query: Query) -> ListQuery:
    out = ListQuery()
    one = {name: values[-1] for name, values in query.items() if values}
    if "limit" in one:
        out.limit = min(_integer("limit", one["limit"]), MAX_LIMIT)
    out.marker = one.get("marker")
    out.sort = _sort(query)
    if "visibility" in one:
        if one["visibility"] not in (*VISIBILITIES, "all"):
            raise BadRequest(f"Invalid visibility value: {one['visibility']}")
        out.visibility = one["visibility"]
    if "member_status" in one:
        if one["member_status"] not in MEMBER_STATUSES:
            raise BadRequest(f"Invalid status value: {one['member_status']}")
        out.member_status = one["member_status"]
    out.tests = _filters(query, one, out.visibility)
    return out


def _integer(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} param must be an integer") from None
    if value < 0:
        raise BadRequest(f"{name} param must be positive")
    return value


def _sort(query: Query) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    if "sort" in query:
        if "sort_key" in query or "sort_dir" in query:
            raise BadRequest("Old and new sorting syntax cannot be combined")
        for part in ",".join(query["sort"]).strip().split(","):
            key, _, direction = part.partition(":")
            pairs.append((key.strip(), direction.strip() or "desc"))
        dirs = [direction for _, direction in pairs]
    else:
        keys = [k.strip() for k in query.get("sort_key", [])] or ["created_at"]
        dirs = [d.strip() for d in query.get("sort_dir", [])]
        if len(dirs) > 1 and len(dirs) != len(keys):
            raise BadRequest("Number of sort dirs does not match the number of sort keys")
        given = dirs if len(dirs) > 1 else (dirs or ["desc"]) * len(keys)
        pairs = list(zip(keys, given, strict=True))
    for key, direction in pairs:
        if key not in SORT_KEYS:
            raise BadRequest(
                f"Invalid sort key: {key}. It must be one of the following: {', '.join(SORT_KEYS)}."
            )
        if direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort direction: {direction}")
    if pairs == [("created_at", "desc")]:
        return DEFAULT_SORT
    # as Glance: ties by created_at then id, in the one direction given (else desc)
    tail_dir = dirs[0] if len(dirs) == 1 else "desc"
    names = [key for key, _ in pairs]
    tail = [(k, tail_dir) for k in ("created_at", "id") if k not in names]
    return (*pairs, *tail)


def _filters(query: Query, one: dict[str, str], visibility: str | None) -> list[Test]:
    tests: list[Test] = []
    if visibility not in (None, "all"):
        tests.append(lambda i: i.visibility == visibility)
    if "changes-since" in one:
        raise BadRequest('The "changes-since" filter is no longer available on v2.')
    hidden = _lenient_boolean("os_hidden", one["os_hidden"]) if "os_hidden" in one else False
    tests.append(lambda i: bool(i.os_hidden) == hidden)
    if "protected" in one:
        protected = _boolean("protected", one["protected"])
        tests.append(lambda i: bool(i.protected) == protected)
    if "size_min" in one:
        low = _integer("size_min", one["size_min"])
        tests.append(lambda i: i.size is not None and i.size >= low)
    if "size_max" in one:
        high = _integer("size_max", one["size_max"])
        tests.append(lambda i: i.size is not None and i.size <= high)
    if "size_min" in one and "size_max" in one and int(one["size_min"]) > int(one["size_max"]):
        raise BadRequest("size_min cannot be greater than size_max")
    for tag in query.get("tag", []):
        tests.append(_tag_test(tag))
    for name in ("created_at", "updated_at"):
        for text in query.get(name, []):
            tests.append(_time_test(name, text))
    if "owner" in one:
        owner = one["owner"]
        tests.append(lambda i: i.owner == owner)
    for name, text in one.items():
        if name in PAGING or name in ("os_hidden", "protected", "size_min", "size_max", "tag"):
            continue
        if name in ("created_at", "updated_at", "owner"):
            continue
        tests.append(_equals_test(name, text))
    return tests


def _tag_test(tag: str) -> Test:
    return lambda image: tag in (image.tags or [])


def _lenient_boolean(name: str, text: str) -> bool:
    """As oslo's bool_from_string(strict=True) reads os_hidden (openstacksdk sends 'True')."""
    value = text.strip().lower()
    if value in ("1", "t", "true", "on", "y", "yes"):
        return True
    if value in ("0", "f", "false", "off", "n", "no"):
        return False
    raise BadRequest(f"Invalid value '{text}' for {name}: use 'true' or 'false'.")


def _boolean(name: str, text: str) -> bool:
    if text not in ("true", "false"):
        raise BadRequest(f"Invalid value '{text}' for {name}: use 'true' or 'false'.")
    return text == "true"


def _time_test(name: str, text: str) -> Test:
    operator, sep, value = text.partition(":")
    if not sep or operator not in TIME_OPERATORS:
        operator, value = "eq", text
        if ":" in text and text.split(":", 1)[0].isalpha():
            raise BadRequest(f"Invalid operator '{text.split(':', 1)[0]}' for {name}.")
    try:
        when = parse_time(value)
    except ValueError:
        raise BadRequest(f"Invalid time format for {name}: '{value}'.") from None
    attribute = "created" if name == "created_at" else "updated"

    def test(image: GlanceImageModel) -> bool:
        # compare at Glance's precision: the second shown in created_at/updated_at
        stamp = parse_time(getattr(image, attribute)).replace(microsecond=0)
        return _compare(stamp, operator, when)

    return test


def _compare(left: datetime.datetime, operator: str, right: datetime.datetime) -> bool:
    return {
        "gt": left > right,
        "gte": left >= right,
        "lt": left < right,
        "lte": left <= right,
        "neq": left != right,
        "eq": left == right,
    }[operator]


def _equals_test(name: str, text: str) -> Test:
    if text.startswith("in:") and name in IN_FILTERS:
        wanted = set(_in_values(text[3:]))
        return lambda i: _field(i, name) in wanted
    return lambda i: _field(i, name) == text


#: Glance's split of an ``in:`` list: commas separate, a double-quoted value may hold commas
_IN_VALUE = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)",?|([^,]+),?|,')


def _in_values(text: str) -> list[str]:
    if text.count('"') % 2:
        raise BadRequest("Invalid filter value: the quotes are not closed.")
    values = [quoted or bare for quoted, bare in _IN_VALUE.findall(text)]
    if not values or not all(values):
        raise BadRequest("Invalid 'in:' filter: empty value.")
    return values


def _field(image: GlanceImageModel, name: str) -> Any:
    if name in ("id", "name", "status", "container_format", "disk_format", "checksum"):
        return getattr(image, name)
    if name == "os_hash_value":
        return image.os_hash_value
    if name in ("min_disk", "min_ram", "size", "virtual_size"):
        value = getattr(image, name)
        return None if value is None else str(int(value))
    return (image.properties or {}).get(name)
