"""Glance's JSON patch: RFC 6902 add/remove/replace on an image's top-level fields (media type
application/openstack-images-v2.1-json-patch), or the older 2.0 form ``{"replace": "/name",
"value": ...}``. Applied with jsonpatch; what Glance refuses is refused first."""

from __future__ import annotations

import re
from typing import Any

import jsonpatch

from chalicelib.domain.glance import image_fields
from chalicelib.errors import BadRequest, Conflict

OPERATIONS = ("add", "remove", "replace")
_TOP_LEVEL = re.compile(r"^/([^/]+)$")


#: the patch media types Glance takes, and the JSON-patch draft each follows
DRAFTS = {
    "application/openstack-images-v2.0-json-patch": 4,
    "application/openstack-images-v2.1-json-patch": 10,
}


def normalized(operations: Any, draft: int = 10) -> list[dict[str, Any]]:
    """Each operation in the RFC 6902 form; 2.0 (draft 4) operations are rewritten."""
    if not isinstance(operations, list):
        raise BadRequest("Request body must be a JSON array of operation objects.")
    out = []
    for operation in operations:
        if not isinstance(operation, dict):
            raise BadRequest("Operations must be JSON objects.")
        if draft == 10:
            if "op" not in operation:
                raise BadRequest(
                    f"Unable to find `op` in JSON Schema change. It must be one of the "
                    f"following: {', '.join(OPERATIONS)}."
                )
            op, path = operation.get("op"), operation.get("path")
        else:  # 2.0: the operation's name is the key that holds the path
            names = [name for name in OPERATIONS if name in operation]
            if len(names) != 1:
                raise BadRequest(
                    "Operation objects must contain exactly one member named "
                    '"add", "remove", or "replace".'
                )
            op, path = names[0], operation[names[0]]
        if op not in OPERATIONS:
            raise BadRequest(f"Operation objects must have an 'op' of {list(OPERATIONS)}.")
        if not isinstance(path, str):
            raise BadRequest("Unable to find 'path' element in operation.")
        step: dict[str, Any] = {"op": op, "path": path}
        if op != "remove":
            if "value" not in operation:
                raise BadRequest(f"Operation '{op}' needs a 'value' element.")
            step["value"] = operation["value"]
        out.append(step)
    return out


def apply_patch(document: dict[str, Any], operations: Any, draft: int = 10) -> dict[str, Any]:
    """``document`` patched; every operation is checked before any applies. In 2.1 (draft 10)
    ``add`` on an existing member replaces it; in 2.0 (draft 4) it is 409, as in Glance."""
    steps = normalized(operations, draft)
    names = []
    for step in steps:
        if not _TOP_LEVEL.match(step["path"]):
            raise BadRequest(f"Invalid JSON pointer for this resource: '{step['path']}'")
        try:
            name = str(jsonpatch.JsonPointer(step["path"]).parts[0])
        except jsonpatch.JsonPointerException as exc:
            raise BadRequest(f"Invalid JSON pointer: {exc}") from exc
        image_fields.refuse_unsettable(name)
        names.append(name)
    patched = dict(document)
    for step, name in zip(steps, names, strict=True):
        if step["op"] == "add" and name in patched:
            if draft == 4:
                raise Conflict(f"Property {name} already present.")
            step = {**step, "op": "replace"}
        try:
            patched = dict(jsonpatch.apply_patch(patched, [step]))
        except jsonpatch.JsonPatchConflict as exc:
            raise Conflict(f"Property {name} does not exist.") from exc
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise BadRequest(f"Invalid patch: {exc}") from exc
    return patched
