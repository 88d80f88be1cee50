"""JSON from outside (request bodies, documents users put in the bucket), read without letting
hostile input through: nesting deeper than any API needs, strings longer than any field takes,
lone UTF-16 surrogates (which no store can encode) and bytes that are not UTF-8 are refused as
malformed, never a 500. Each face still checks its own fields' limits; this is the floor."""

from __future__ import annotations

import json
import re
from typing import Any

#: deeper than any body of any face (a composer request is about 6 levels deep)
MAX_DEPTH = 32
#: longer than any text field of any face (Glance keeps property values of up to 65,535)
MAX_STRING = 65536
_SURROGATE = re.compile("[\ud800-\udfff]")


class MalformedJSON(ValueError):
    """The text is not JSON a service should accept; the message says why."""


def loads(data: str | bytes | bytearray) -> Any:
    """``json.loads`` that raises only MalformedJSON for bad input."""
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"{exc.reason} at byte {exc.start}"
            raise MalformedJSON(f"the body is not UTF-8 ({reason})") from None
    try:
        value = json.loads(data)
    except RecursionError:
        raise MalformedJSON(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise MalformedJSON(str(exc)) from None
    check(value)
    return value


def check(value: Any) -> None:
    """Refuse a parsed value nested deeper than MAX_DEPTH, or holding a string longer than
    MAX_STRING or a lone surrogate."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _text(item)
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise MalformedJSON(f"JSON nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            for key, child in item.items():
                _text(key)
                stack.append((child, depth + 1))
        else:
            stack.extend((child, depth + 1) for child in item)


def _text(text: str) -> None:
    if len(text) > MAX_STRING:
        raise MalformedJSON(f"a string is longer than {MAX_STRING} characters")
    if _SURROGATE.search(text):
        raise MalformedJSON("a string holds a lone UTF-16 surrogate (not valid Unicode)")
