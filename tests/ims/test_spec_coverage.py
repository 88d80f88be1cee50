"""Every operation of the IMS document answers, under each prefix the spec names, with one of
the status codes the OpenAPI document lists for it and the spec's body format."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import Kiln

SPECS = Path(__file__).resolve().parents[2] / "specs" / "ims"
OPENAPI = yaml.safe_load((SPECS / "ims-v3-openapi.yaml").read_text())
DOCUMENT_OPERATIONS = [
    tuple(line.split(" ", 1)) for line in (SPECS / "operations.txt").read_text().splitlines()
]
OPENAPI_OPERATIONS = [
    (method.upper(), path)
    for path, item in OPENAPI["paths"].items()
    for method in item
    if method in ("get", "post", "put", "patch", "delete")
]


def openapi_path(path: str) -> str:
    """The OpenAPI path describing a document path (the legacy API is /v2 there)."""
    if re.match(r"^/(v2|v3|healthz|version)", path):
        return path
    if path.startswith("/remote-build-nodes"):
        return "/v3" + path
    return "/v2" + path


def documented_statuses(method: str, path: str) -> set[int]:
    operation = OPENAPI["paths"][openapi_path(path)][method.lower()]
    return {int(code) for code in operation["responses"]}


def concrete(path: str) -> str:
    return re.sub(
        r"\{([a-z_]+)\}",
        lambda m: "x3000c0s9b0n0" if "xname" in m.group(1) else str(uuid.uuid4()),
        path,
    )


#: operations of later upstream IMS the OpenAPI copy has and the handed-over list has not
LATER_UPSTREAM = {
    ("GET", "/v3/remote-build-nodes/status"),
    ("GET", "/v3/remote-build-nodes/status/{remote_build_node_xname}"),
}


def test_the_document_lists_72_operations() -> None:
    assert len(set(DOCUMENT_OPERATIONS)) == 72
    assert len(OPENAPI_OPERATIONS) == 72 + len(LATER_UPSTREAM)
    assert set(OPENAPI_OPERATIONS) >= LATER_UPSTREAM
    assert not LATER_UPSTREAM & set(DOCUMENT_OPERATIONS)


ALL = sorted(set(DOCUMENT_OPERATIONS) | set(OPENAPI_OPERATIONS))


@pytest.mark.parametrize(("method", "path"), ALL, ids=[f"{m} {p}" for m, p in ALL])
def test_every_operation_is_routed_and_answers_as_specified(
    kiln: Kiln, method: str, path: str
) -> None:
    body = {} if method in ("POST", "PATCH", "PUT") else None
    role = (
        "worker"
        if (method, path.split("/{")[0].rsplit("/", 1)[-1]) == ("PATCH", "jobs")
        else "admin"
    )
    response = kiln.call(method, "/apis/ims" + concrete(path), body, role=role)
    content_type = response.headers.get("Content-Type", "")
    unrouted = response.status_code in (403, 405) and "problem+json" not in content_type
    assert not unrouted, f"{method} {path} is not routed: {response.status_code} {response.body}"
    assert response.status_code in documented_statuses(method, path), response.body
    if response.status_code >= 400:
        assert content_type == "application/problem+json"
        problem = response.json_body
        assert problem["status"] == response.status_code and problem["detail"]
    elif response.status_code != 204:
        assert content_type.startswith("application/json")
