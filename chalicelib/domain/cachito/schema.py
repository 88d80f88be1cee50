"""The JSON Schemas upstream Cachito checks bodies and query parameters against before its own
checks (its OpenAPI document, enforced by connexion), so a malformed input gets the same 400
text: jsonschema's own messages for bodies and values (``'ref' is a required property``,
``'complet' is not one of [...]``) and connexion's for query parameters (``Wrong type,
expected 'integer' for query parameter 'page'``, ``Extra query parameter(s) x not in spec``,
``Missing query parameter 'repo_name'``). The schemas keep upstream's keyword order: the
first error jsonschema meets is the one reported, as connexion does."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import jsonschema
from jsonschema import Draft4Validator

from chalicelib.errors import BadRequest

PACKAGE_MANAGERS = ["gomod", "npm", "pip", "git-submodule", "yarn", "rubygems"]
STATES = ["in_progress", "complete", "failed", "stale"]
ERROR_ORIGINS = ["client", "server"]

_STRING: dict[str, Any] = {"type": "string"}
REF: dict[str, Any] = {
    "type": "string",
    "minLength": 40,
    "maxLength": 40,
    "pattern": "^[a-f0-9]{40}$",
}
REPO: dict[str, Any] = {"type": "string", "maxLength": 200}
PACKAGE_MANAGER: dict[str, Any] = {"type": "string", "enum": PACKAGE_MANAGERS}
STATE: dict[str, Any] = {"type": "string", "enum": STATES}
ERROR_ORIGIN: dict[str, Any] = {"type": "string", "enum": ERROR_ORIGINS}
REPO_NAME: dict[str, Any] = {
    "type": "string",
    "minLength": 3,
    "maxLength": 200,
    "pattern": r"^.*\/[\w.-]+$",
}

_PACKAGE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": _STRING,
        "type": _STRING,
        "version": {"type": "string", "nullable": True},
    },
}
_REPLACEMENT: dict[str, Any] = {
    "allOf": [
        {
            "type": "object",
            "properties": {"new_name": _STRING},
            "required": ["name", "type", "version"],
        },
        _PACKAGE,
    ]
}
_PACKAGE_CONFIG: dict[str, Any] = {
    "type": "object",
    "properties": {"path": _STRING},
    "additionalProperties": False,
}
_PIP_PACKAGE_CONFIG: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": _STRING,
        "requirements_files": {"type": "array", "items": _STRING},
        "requirements_build_files": {"type": "array", "items": _STRING},
    },
    "additionalProperties": False,
}


def _configs(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


#: POST /requests
REQUEST_NEW: dict[str, Any] = {
    "type": "object",
    "properties": {
        "dependency_replacements": {"type": "array", "items": _REPLACEMENT},
        "flags": {"type": "array", "items": _STRING},
        "packages": {
            "type": "object",
            "properties": {
                "gomod": _configs(_PACKAGE_CONFIG),
                "npm": _configs(_PACKAGE_CONFIG),
                "pip": _configs(_PIP_PACKAGE_CONFIG),
                "rubygems": _configs(_PACKAGE_CONFIG),
                "yarn": _configs(_PACKAGE_CONFIG),
            },
            "additionalProperties": False,
        },
        "pkg_managers": {"type": "array", "items": PACKAGE_MANAGER},
        "ref": REF,
        "repo": REPO,
        "user": _STRING,
    },
    "additionalProperties": False,
    "required": ["ref", "repo"],
}
_ENVIRONMENT_VARIABLE_INFO: dict[str, Any] = {
    "type": "object",
    "properties": {"value": _STRING, "kind": _STRING},
    "additionalProperties": False,
    "required": ["kind", "value"],
}
_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
#: PATCH /requests/{id}
REQUEST_UPDATE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "environment_variables": {
            "type": "object",
            "additionalProperties": _ENVIRONMENT_VARIABLE_INFO,
        },
        "state": STATE,
        "state_reason": _STRING,
        "packages_count": _COUNT,
        "dependencies_count": _COUNT,
        "error_origin": ERROR_ORIGIN,
        "error_type": _STRING,
    },
    "additionalProperties": False,
    "minProperties": 1,
}
#: POST /requests/{id}/configuration-files
CONFIGURATION_FILES: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "content": {"type": "string", "format": "byte"},
            "path": _STRING,
            "type": {"type": "string", "enum": ["base64"]},
        },
        "additionalProperties": False,
        "required": ["content", "path", "type"],
    },
}


def _type(validator: Any, types: Any, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    """OpenAPI 3's ``nullable``, as connexion reads it: null passes a nullable schema."""
    if instance is None and schema.get("nullable"):
        return
    yield from Draft4Validator.VALIDATORS["type"](validator, types, instance, schema)


_Validator = jsonschema.validators.extend(Draft4Validator, {"type": _type})


class FieldErrors(BadRequest):
    """A 400 whose body is ``{"errors": {field: message}}`` (upstream's pydantic-checked query
    parameters), the only error shape besides ``{"error": message}``."""


def check(schema: dict[str, Any], instance: Any) -> None:
    """BadRequest with jsonschema's message of the first error, as connexion reports it."""
    for error in _Validator(schema).iter_errors(instance):
        raise BadRequest(error.message)


@dataclasses.dataclass(frozen=True)
class Param:
    """A query parameter as upstream's OpenAPI document declares it."""

    name: str
    schema: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(_STRING))
    kind: str = "string"  # "integer" and "boolean" values are converted first
    required: bool = False
    repeated: bool = False  # every value is checked (pkg_manager); else the last one counts


@dataclasses.dataclass(frozen=True)
class Query:
    """The checked query: each declared parameter's values (converted), in order."""

    values: dict[str, list[Any]]

    def get(self, name: str, default: Any = None) -> Any:
        found = self.values.get(name)
        return found[-1] if found else default

    def all(self, name: str) -> list[Any]:
        return list(self.values.get(name, []))


def check_query(params: Sequence[Param], pairs: Sequence[tuple[str, str]]) -> Query:
    """Unknown parameters first, then each declared one in order, as connexion's strict
    validation does; BadRequest with connexion's wording."""
    declared = {param.name for param in params}
    extra = list(dict.fromkeys(name for name, _ in pairs if name not in declared))
    if extra:
        raise BadRequest(f"Extra query parameter(s) {', '.join(extra)} not in spec")
    given: dict[str, list[str]] = {}
    for name, value in pairs:
        given.setdefault(name, []).append(value)
    values: dict[str, list[Any]] = {}
    for param in params:
        raw = given.get(param.name)
        if not raw:
            if param.required:
                raise BadRequest(f"Missing query parameter '{param.name}'")
            continue
        values[param.name] = [_value(param, one) for one in (raw if param.repeated else raw[-1:])]
    return Query(values)


def _value(param: Param, raw: str) -> Any:
    if param.repeated and raw == "":  # e.g. pkg_manager= : ignored, as upstream does
        return raw
    try:
        value = _convert(param.kind, raw)
    except ValueError:
        raise BadRequest(
            f"Wrong type, expected '{param.kind}' for query parameter '{param.name}'"
        ) from None
    check(param.schema, value)
    return value


def _convert(kind: str, raw: str) -> Any:
    if kind == "integer":
        text = raw.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
            raise ValueError(raw)
        return int(text)
    if kind == "boolean":  # true/1 and false/0, any case (upstream's str_to_bool)
        lowered = raw.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise ValueError(raw)
    return raw
