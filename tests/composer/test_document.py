"""Kiln's OpenAPI document for the composer face: it validates, and it keeps every path,
schema, field and enum of the published document (so clients built from that one work)."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from tests import skip_policy
from tests.conftest import ROOT

KILN_DOCUMENT = ROOT / "chalicelib" / "faces" / "composer" / "kiln-composer-v2.yaml"
#: the published contract, ../shared/specs/ beside the repository (absent in CI's clean clone)
PUBLISHED_DOCUMENT = skip_policy.published_contract("composer-cloud-api-v2.yaml")
METHODS = ("get", "put", "post", "delete", "patch")

needs_published = skip_policy.needs_published(PUBLISHED_DOCUMENT)


def load(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text(encoding="utf-8")))


# -- the documents ------------------------------------------------------------------------------


def test_kiln_document_is_valid_openapi() -> None:
    validate(load(KILN_DOCUMENT))


@needs_published
def test_published_document_has_exactly_the_two_quirks_kiln_corrects() -> None:
    published = load(PUBLISHED_DOCUMENT)
    with pytest.raises(OpenAPIValidationError, match=re.escape("errors~1{id}")):
        validate(copy.deepcopy(published))
    published["paths"]["/errors/{id}"]["get"]["responses"]["200"]["description"] = "error"
    with pytest.raises(OpenAPIValidationError, match="OSTree"):
        validate(copy.deepcopy(published))
    parent = published["components"]["schemas"]["OSTree"]["properties"]["parent"]
    parent["example"] = parent.pop("examples")["commit_id"]["value"]
    validate(published)


def _properties(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """A schema's properties, with those of its allOf parts (references followed)."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    found = dict(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        found.update(_properties(part, components))
    return found


def _parameters(operation: dict[str, Any], document: dict[str, Any]) -> set[tuple[str, str]]:
    """(in, name) of an operation's parameters, references followed."""
    found = set()
    for parameter in operation.get("parameters", []):
        if "$ref" in parameter:
            parameter = document["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[-1]]
        found.add((parameter["in"], parameter["name"]))
    return found


def _enums(node: Any, where: str = "") -> Iterator[tuple[str, list[Any]]]:
    if isinstance(node, dict):
        if isinstance(node.get("enum"), list):
            yield where, node["enum"]
        for key, value in node.items():
            yield from _enums(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _enums(value, f"{where}/{i}")


@needs_published
def test_kiln_document_keeps_every_published_path_schema_field_and_enum() -> None:
    published, kiln = load(PUBLISHED_DOCUMENT), load(KILN_DOCUMENT)
    for path, item in published["paths"].items():
        assert path in kiln["paths"], path
        for method, operation in item.items():
            ours = kiln["paths"][path][method]
            assert ours["operationId"] == operation["operationId"]
            assert set(operation["responses"]) <= set(ours["responses"]), (path, method)
            assert _parameters(operation, published) <= _parameters(ours, kiln), (path, method)
    published_schemas = published["components"]["schemas"]
    kiln_schemas = kiln["components"]["schemas"]
    for name, schema in published_schemas.items():
        assert name in kiln_schemas, name
        missing = set(_properties(schema, published_schemas)) - set(
            _properties(kiln_schemas[name], kiln_schemas)
        )
        assert not missing, (name, missing)
    assert set(published["components"]["parameters"]) <= set(kiln["components"]["parameters"])
    ours = dict(_enums(kiln))
    for where, values in _enums(published):
        assert set(values) <= set(ours.get(where, [])), where
