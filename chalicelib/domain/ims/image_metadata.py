"""An IMS image's ``metadata``: a key/value map, as the real IMS server keeps it.

What clients send differs from the document, so every form the real server or its clients use is
read (the record always answers the document's map):

- on create: one ``{"key", "value"}`` object (the real server and the ``cray`` CLI), a map of
  string values, or a list of ``{"key", "value"}`` objects;
- on PATCH: one ``{"operation": "set"|"remove", "key", "value"}`` object (the ``cray`` CLI), a
  list of them (the document), or ``{"annotations": [...]}`` of them (the real server's v3 code).
"""

from __future__ import annotations

from chalicelib.domain.validation import PAIRS_MAX, BodyCheck, pairs_fit
from chalicelib.errors import Invalid

FIELD = "metadata"
Operation = tuple[str, str, str]  # (set | remove, key, value)


def initial(check: BodyCheck) -> dict[str, str]:
    """The metadata a create body gives, or {} (problems go to ``check``)."""
    value = check.body.get(FIELD)
    if value is None:
        return {}
    if isinstance(value, dict) and set(value) == {"key", "value"}:
        value = [value]
    if isinstance(value, list):
        pairs = [
            (item["key"], item["value"])
            for item in value
            if isinstance(item, dict)
            and set(item) == {"key", "value"}
            and isinstance(item["key"], str)
            and isinstance(item["value"], str)
        ]
        ok = len(pairs) == len(value)
    else:
        pairs = list(value.items()) if isinstance(value, dict) else []
        ok = isinstance(value, dict) and all(isinstance(v, str) for _, v in pairs)
    if not ok:
        check.fail(FIELD, 'One {"key", "value"} object, or an object of string values.')
        return {}
    return dict(pairs) if pairs_fit(check, FIELD, pairs) else {}


def operations(check: BodyCheck) -> list[Operation]:
    """The changes a PATCH body asks for, in order (problems go to ``check``)."""
    value = check.body.get(FIELD)
    if value is None:
        return []
    if isinstance(value, dict) and set(value) == {"annotations"}:
        value = value["annotations"]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        check.fail(FIELD, "A {operation, key, value} change, or a list of them.")
        return []
    found: list[Operation] = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"operation", "key", "value"}:
            check.fail(FIELD, "Each change has only operation, key and value.")
            continue
        operation, key, text = item.get("operation"), item.get("key"), item.get("value")
        if operation not in ("set", "remove") or not isinstance(key, str) or not key:
            check.fail(FIELD, "operation must be set or remove, with a non-empty key.")
        elif operation == "set" and not isinstance(text, str):
            check.fail(FIELD, f"set {key}: value must be a string.")
        else:
            found.append((str(operation), key, str(text or "")))
    pairs_fit(check, FIELD, [(key, text) for _, key, text in found])
    return found


def apply(current: dict[str, str], changes: list[Operation]) -> dict[str, str]:
    metadata = dict(current)
    for operation, key, value in changes:
        if operation == "set":
            metadata[key] = value
        else:
            metadata.pop(key, None)
    if len(metadata) > PAIRS_MAX:
        raise Invalid(
            f"an image holds at most {PAIRS_MAX} metadata entries",
            {FIELD: [f"At most {PAIRS_MAX} entries."]},
        )
    return metadata
