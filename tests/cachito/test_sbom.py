"""SBOMs of Cachito requests: the Cachito-exact CycloneDX 1.4 document and Kiln's full 1.6 one,
from realistic package data (tests/cachito/package_data.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from uuid import UUID

import jsonschema
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from referencing import Registry, Resource

from chalicelib.domain.cachito.sbom import SbomRequest, cachito_sbom, cyclonedx_16
from tests.cachito.package_data import (
    GITHUB_A,
    GO_SVC,
    H1,
    NPM_SOURCES,
    PIP_SOURCES,
    REF_A,
    REF_C,
    REPO_A,
    REPO_C,
    SUB,
    SVC,
    TOOLS,
    V_TOOLS,
    go_packages,
    npm_package,
    pip_package,
    pypi,
    yarn_package,
)


def _cdx(name: str, purl: str, version: str | None = None) -> dict:
    component = {"type": "library", "name": name, "purl": purl}
    return component | ({"version": version} if version else {})


def _validate_cyclonedx_14(document: dict) -> None:
    schemas = resources.files("cyclonedx.schema") / "_res"

    def load(name: str) -> Any:
        return json.loads((schemas / name).read_text())

    registry: Registry = Registry().with_resources(
        (f"http://cyclonedx.org/schema/{name}", Resource.from_contents(load(name)))
        for name in ("spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json")
    )
    schema = load("bom-1.4.SNAPSHOT.schema.json")
    jsonschema.Draft7Validator(schema, registry=registry).validate(document)


def test_cachito_sbom_lists_go_modules_packages_and_dependencies_once_sorted() -> None:
    x_text = "pkg:golang/golang.org%2Fx%2Ftext"
    sbom = cachito_sbom([go_packages()])
    assert sbom == {
        "bomFormat": "CycloneDX",
        "specVersion": "1.4",
        "version": 1,
        "components": [_cdx(*component) for component in [
            ("third_party/proto", f"pkg:github/example/proto-defs@{SUB}",
             f"https://github.com/Example/Proto-Defs.git#{SUB}"),
            ("errors", "pkg:golang/errors"),
            ("fmt", "pkg:golang/fmt"),
            ("github.com/pkg/errors", "pkg:golang/github.com%2Fpkg%2Ferrors@v0.8.1", "v0.8.1"),
            (f"{GO_SVC}/cmd/svc", f"{SVC}%2Fcmd%2Fsvc@v1.2.0", "v1.2.0"),
            (f"{GO_SVC}/internal/util", f"{SVC}%2Finternal%2Futil@v1.2.0", "v1.2.0"),
            (TOOLS, f"{SVC}%2Ftools@{V_TOOLS}", V_TOOLS),
            (GO_SVC, f"{SVC}@v1.2.0", "v1.2.0"),
            ("example.com/lib", f"{SVC}@v1.2.0#staging/lib", "./staging/lib"),
            ("golang.org/x/text/language", f"{x_text}%2Flanguage@v0.14.0", "v0.14.0"),
            ("golang.org/x/text", f"{x_text}@v0.14.0", "v0.14.0"),
            ("io/fs", "pkg:golang/io%2Ffs"),
        ]],
    }  # fmt: skip
    _validate_cyclonedx_14(sbom)


def test_cachito_sbom_of_two_requests_drops_exact_duplicates_only() -> None:
    first = [pip_package(), npm_package()]
    second = [pip_package([pypi("aiowsgi", "0.7")]), yarn_package()]
    second[0]["version"] = "0.9.0"  # the same purl and name, another version
    sbom = cachito_sbom([first, second])
    names = [(c["purl"], c["name"], c.get("version")) for c in sbom["components"]]
    assert names == sorted(names)
    assert len(names) == len(set(names)) == len(PIP_SOURCES) + len(NPM_SOURCES) + 4 + 2
    assert names[5:8] == [
        (GITHUB_A, "web-app", "0.9.0"),
        (GITHUB_A, "web-app", "1.0.0"),
        (f"{GITHUB_A}#web/ui", "@example/ui", "2.1.0"),
    ]
    assert _cdx("chai", "pkg:npm/chai@4.2.0", "4.2.0") in sbom["components"]
    assert all(set(c) <= {"type", "name", "version", "purl"} for c in sbom["components"])
    assert cachito_sbom([]) == sbom | {"components": []}
    _validate_cyclonedx_14(sbom)


WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SERIAL = UUID("3e671687-395b-41f5-a30f-a58921a69b79")


def _valid_16(document: dict) -> dict:
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document)) is None
    return document


def _graph(document: dict) -> dict[str, list[str]]:
    return {d["ref"]: d.get("dependsOn", []) for d in document["dependencies"]}


def test_cyclonedx_16_of_one_request_has_metadata_hashes_dev_marks_and_the_graph() -> None:
    request = SbomRequest(7, REPO_A, REF_A, [pip_package(), npm_package()])
    bom = _valid_16(cyclonedx_16([request], timestamp=WHEN, serial_number=SERIAL))
    assert (bom["specVersion"], bom["serialNumber"]) == ("1.6", f"urn:uuid:{SERIAL}")
    assert bom["metadata"]["timestamp"] == "2025-03-01T12:00:00+00:00"
    tools = bom["metadata"]["tools"]["components"]
    assert [tool["name"] for tool in tools] == ["kiln", "cyclonedx-python-lib"]
    subject = bom["metadata"]["component"]
    assert (subject["bom-ref"], subject["purl"], subject["version"]) == (
        "cachito-request-7",
        f"pkg:github/example/web-app@{REF_A}",
        REF_A,
    )
    by_ref = {c["bom-ref"]: c for c in bom["components"]}
    aiowsgi = by_ref["pkg:pypi/aiowsgi@0.7"]
    assert aiowsgi["hashes"] == [{"alg": "SHA-256", "content": H1}]
    assert aiowsgi["scope"] == "required"
    assert {"name": "kiln:cachito:bundle_path", "value": "deps/pip/aiowsgi/aiowsgi-0.7.tar.gz"} in (
        aiowsgi["properties"]
    )
    types_node = by_ref["pkg:npm/%40types/node@20.11.5"]
    assert types_node["scope"] == "optional"
    assert {"name": "cdx:npm:package:development", "value": "true"} in types_node["properties"]
    assert {"name": "kiln:cachito:dev", "value": "true"} in by_ref["pkg:pypi/setuptools@69.0.3"][
        "properties"
    ]
    ui = by_ref["cachito-request-7:npm:@example/ui:web/ui"]
    assert ui["purl"] == f"pkg:github/example/web-app@{REF_A}#web/ui"
    for component in bom["components"]:
        PackageURL.from_string(component["purl"])  # canonical purls, as packageurl-python reads
    graph = _graph(bom)
    assert graph["cachito-request-7"] == [
        "cachito-request-7:npm:@example/ui:web/ui",
        "cachito-request-7:pip:web-app",
    ]
    assert len(graph["cachito-request-7:pip:web-app"]) == 5
    assert graph["pkg:npm/chai@4.2.0"] == ["pkg:npm/deep-eql@3.0.1"]
    assert graph["pkg:pypi/flask-login@0.5.0"] == ["pkg:pypi/aiowsgi@0.7"]
    assert graph["pkg:npm/deep-eql@3.0.1"] == []


def test_cyclonedx_16_keeps_go_modules_and_packages_with_one_purl_apart() -> None:
    bom = _valid_16(cyclonedx_16([SbomRequest(9, REPO_C, REF_C, go_packages())]))
    subject = bom["metadata"]["component"]
    assert subject["purl"] == (
        f"pkg:generic/go-svc@{REF_C}?vcs_url=git%2Bhttps://gitlab.com/example/go-svc.git%40{REF_C}"
    )
    refs = {c["bom-ref"] for c in bom["components"]}
    assert {
        "gomod:pkg:golang/github.com/pkg/errors@v0.8.1",
        "go-package:pkg:golang/github.com/pkg/errors@v0.8.1",
        "pkg:golang/errors",
    } <= refs
    lib_purl = "pkg:golang/gitlab.com/example/go-svc@v1.2.0#staging/lib"
    lib = next(c for c in bom["components"] if c["bom-ref"] == f"gomod:{lib_purl}")
    assert (lib["purl"], lib["version"]) == (lib_purl, "./staging/lib")
    assert {"name": "kiln:cachito:replaces", "value": "example.com/lib@v0.1.0"} in lib["properties"]
    assert "scope" not in lib
    graph = _graph(bom)
    assert graph[f"cachito-request-9:gomod:{TOOLS}:tools"] == [
        "pkg:golang/golang.org/x/text@v0.14.0"
    ]
    assert len(graph["cachito-request-9"]) == 6
    assert "version" not in next(c for c in bom["components"] if c["name"] == "io/fs")


def test_cyclonedx_16_of_two_requests_shares_dependencies_under_one_subject() -> None:
    first = SbomRequest(1, REPO_A, REF_A, [pip_package(), npm_package()])
    second = SbomRequest(2, "https://github.com/example/yarn-app", REF_A, [yarn_package()])
    bom = _valid_16(cyclonedx_16([first, second]))
    subject = bom["metadata"]["component"]
    assert subject["bom-ref"] == "cachito-requests:1,2"
    assert [c["bom-ref"] for c in subject["components"]] == [
        "cachito-request-1",
        "cachito-request-2",
    ]
    assert _graph(bom)["cachito-requests:1,2"] == ["cachito-request-1", "cachito-request-2"]
    jest = next(c for c in bom["components"] if c["name"] == "jest")
    assert {"name": "cdx:npm:package:development", "value": "true"} in jest["properties"]
    # chai: an npm dependency of one request and a yarn dependency of the other, once
    assert [c["bom-ref"] for c in bom["components"] if c["name"] == "chai"] == [
        "pkg:npm/chai@4.2.0"
    ]
    graph = _graph(bom)
    assert "pkg:npm/chai@4.2.0" in graph["cachito-request-1:npm:@example/ui:web/ui"]
    assert "pkg:npm/chai@4.2.0" in graph["cachito-request-2:yarn:yarn-app"]
    assert UUID(bom["serialNumber"].removeprefix("urn:uuid:"))
    assert _valid_16(cyclonedx_16([]))["metadata"]["component"]["name"] == "cachito-requests"


@pytest.mark.parametrize("dev_in_second", [True, False])
def test_cyclonedx_16_a_dependency_is_dev_only_when_every_use_is(dev_in_second: bool) -> None:
    first = SbomRequest(1, REPO_A, REF_A, [pip_package([pypi("six", "1.16.0", dev=True)])])
    again = pip_package([pypi("six", "1.16.0", dev=dev_in_second)])
    bom = _valid_16(cyclonedx_16([first, SbomRequest(2, REPO_A, REF_A, [again])]))
    six = next(c for c in bom["components"] if c["name"] == "six")
    assert six["scope"] == ("optional" if dev_in_second else "required")
