"""Typed readers for the fields of a recipe's YAML mapping: each failure is a BuildError that
names the field and says what is allowed."""

from __future__ import annotations

import difflib
import re
from typing import Any

from builders.backends.base import BuildError

RECIPE_FILE = "recipe.yaml"


def reject_unknown(data: dict[Any, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise BuildError(
                f"unknown field {key!r} in {where}{hint}; allowed fields: {', '.join(allowed)}"
            )


def describe(value: object) -> str:
    return f"{type(value).__name__} {value!r}"[:120]


def string(data: dict[Any, Any], key: str, where: str, default: str | None) -> str | None:
    value = data.get(key, default)
    if value is None and default is None and key in data:
        raise BuildError(f"{where}{key} must not be empty")
    if value is not None and not isinstance(value, str):
        raise BuildError(f"{where}{key} must be a string, got {describe(value)}")
    return value


def matching(
    data: dict[Any, Any],
    key: str,
    pattern: re.Pattern[str],
    what: str,
    default: str | None = None,
    *,
    required: bool = False,
    where: str = "",
) -> str:
    if required and key not in data:
        raise BuildError(f"{RECIPE_FILE} must set {where}{key} ({what})")
    value = string(data, key, where, default)
    if value is None or not pattern.match(value):
        raise BuildError(f"{where}{key} must be {what}, got {value!r}")
    return value


def choice(data: dict[Any, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = data.get(key, default)
    if value not in allowed:
        raise BuildError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


def boolean(data: dict[Any, Any], key: str, default: bool, where: str = "") -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise BuildError(f"{where}{key} must be true or false, got {describe(value)}")
    return value


def sequence(data: dict[Any, Any], key: str, where: str = "") -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BuildError(
            f"{where}{key} must be a list (YAML '- item' lines), got {describe(value)}"
        )
    return value


def strings(data: dict[Any, Any], key: str, what: str, where: str = "") -> tuple[str, ...]:
    items = sequence(data, key, where)
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            raise BuildError(
                f"{where}{key}[{index}] must be a non-empty string ({what}), got {describe(item)}"
            )
    return tuple(items)


def matching_list(
    data: dict[Any, Any],
    key: str,
    pattern: re.Pattern[str],
    what: str,
    default: tuple[str, ...],
    where: str = "",
) -> tuple[str, ...]:
    if data.get(key) is None:
        return default
    items = strings(data, key, what, where)
    for index, item in enumerate(items):
        if not pattern.match(item):
            raise BuildError(f"{where}{key}[{index}] {item!r} is not valid: expected {what}")
    return items


def mapping(item: object, where: str, allowed: tuple[str, ...]) -> dict[Any, Any]:
    if not isinstance(item, dict):
        raise BuildError(f"{where} must be a mapping ({', '.join(allowed)}), got {describe(item)}")
    reject_unknown(item, allowed, where)
    return item
