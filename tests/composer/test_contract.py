"""The composer face against its contracts: it answers as Kiln's OpenAPI document and the
published one say (the documents themselves: test_document.py). schemathesis generates the
requests (valid and invalid ones) and sends them over HTTP to chalice's local server, running
the app against moto in-process (Step Functions executions are recorded, never run)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
import schemathesis
import yaml
from chalice.config import Config
from chalice.local import ChaliceRequestHandler, create_local_server
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chalicelib import container as container_module
from infra import resources
from infra.local import tokens
from infra.local.provision import Provisioned, provision
from tests import skip_policy
from tests.conftest import BUCKET, REGION, ROOT, Kiln, settings_for, use_test_aws_env

KILN_DOCUMENT = ROOT / "chalicelib" / "faces" / "composer" / "kiln-composer-v2.yaml"
#: the published contract, ../shared/specs/ beside the repository (absent in CI's clean clone)
PUBLISHED_DOCUMENT = skip_policy.published_contract("composer-cloud-api-v2.yaml")
PREFIX = "/api/image-builder-composer/v2"
UNKNOWN = "123e4567-e89b-12d3-a456-426655440000"
METHODS = ("get", "put", "post", "delete", "patch")

needs_published = skip_policy.needs_published(PUBLISHED_DOCUMENT)

#: what Kiln's document promises: no 5xx, only documented statuses, bodies and media types
KILN_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: what a client built from the published document relies on. Kiln adds statuses the published
#: document lacks (400 for bad page/size, 401/403 on /logs and /manifests) and answers errors
#: of /logs and /manifests with JSON where it says text/plain, so only bodies are checked.
PUBLISHED_CHECKS = [not_a_server_error, response_schema_conformance]
#: hermetic (no schemathesis.toml is looked for). chalice's local server answers TRACE and QUERY
#: itself with 501 (API Gateway answers them when deployed): the face never sees them.
CONFIG = schemathesis.Config.from_dict(
    {
        "phases": {
            "coverage": {"unexpected-methods": ["get", "put", "post", "delete", "options", "patch"]}
        }
    }
)
FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,  # every run starts afresh: no replay of examples saved by earlier runs
    suppress_health_check=list(HealthCheck),
)

kiln_schema = schemathesis.openapi.from_path(KILN_DOCUMENT, config=CONFIG)


def load(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text(encoding="utf-8")))


# -- the face, served over HTTP -----------------------------------------------------------------


@dataclasses.dataclass
class Face:
    """Kiln's app behind chalice's local server (``base_url``), a user's token, and the test
    client for what is not HTTP (build hosts' events)."""

    base_url: str
    kiln: Kiln

    @functools.cached_property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.kiln.token()}"}  # minting takes ~30 ms

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("headers", self.headers)
        return requests.get(self.base_url + path, timeout=30, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("headers", self.headers)
        return requests.post(self.base_url + path, json=body, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def face(signing_keys: tuple[bytes, str]) -> Iterator[Face]:
    private_pem, public_pem = signing_keys
    with pytest.MonkeyPatch.context() as patch:
        use_test_aws_env(patch)
        patch.setattr(ChaliceRequestHandler, "log_message", lambda *_args: None)
        with mock_aws():
            provisioned: Provisioned = provision(REGION, "kiln", BUCKET, resources.Timing())
            container_module.use(container_module.Container(settings_for(provisioned, public_pem)))
            import app as app_module

            chalice_app = app_module.app
            app_class = chalice_app.__class__
            server = create_local_server(chalice_app, Config.create(), "127.0.0.1", 0)
            port = server.server.server_address[1]
            thread = threading.Thread(
                target=server.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            try:
                with Client(chalice_app) as client:
                    yield Face(
                        f"http://127.0.0.1:{port}{PREFIX}", Kiln(client, private_pem, provisioned)
                    )
            finally:
                server.server.shutdown()
                server.server.server_close()
                thread.join(timeout=10)
                chalice_app.__class__ = app_class
                container_module._current.clear()


def test_openapi_serves_this_document_as_json(face: Face) -> None:
    response = face.get("/openapi")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == json.loads(json.dumps(load(KILN_DOCUMENT)))


@kiln_schema.parametrize()
@FUZZ
def test_the_face_answers_as_its_document_says(case: schemathesis.Case, face: Face) -> None:
    case.call_and_validate(base_url=face.base_url, headers=face.headers, checks=KILN_CHECKS)


if PUBLISHED_DOCUMENT.exists():
    published_schema = schemathesis.openapi.from_path(PUBLISHED_DOCUMENT, config=CONFIG)

    @published_schema.parametrize()
    @FUZZ
    def test_the_face_answers_as_the_published_document_says(
        case: schemathesis.Case, face: Face
    ) -> None:
        case.call_and_validate(
            base_url=face.base_url, headers=face.headers, checks=PUBLISHED_CHECKS
        )

else:

    @needs_published
    def test_the_face_answers_as_the_published_document_says() -> None:
        """Skipped: the published document is not next to this checkout."""


def _operations() -> list[tuple[str, str]]:
    document = load(KILN_DOCUMENT)
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    ]


def _concrete(path: str) -> str:
    return path.replace("{id}", "13" if path.startswith("/errors") else UNKNOWN)


BAD_CREDENTIALS = {
    "none": {},
    "garbage": {"Authorization": "Bearer not-a-jwt"},
    "not bearer": {"Authorization": "Basic dXNlcjpwYXNz"},
}


@pytest.mark.parametrize(("method", "path"), _operations())
@pytest.mark.parametrize("credentials", list(BAD_CREDENTIALS))
def test_every_operation_refuses_a_missing_or_bad_token(
    face: Face, method: str, path: str, credentials: str
) -> None:
    body = {"distribution": "debian-12"} if method == "POST" else None
    response = requests.request(
        method,
        face.base_url + _concrete(path),
        json=body,
        headers=BAD_CREDENTIALS[credentials],
        timeout=30,
    )
    assert response.status_code == 401, response.text
    _conforms(method, path, response)


def test_a_token_with_an_unknown_role_is_forbidden(face: Face) -> None:
    token = tokens.mint(face.kiln.private_pem, "demo", "janitor")
    response = face.get("/errors", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403, response.text
    _conforms("GET", "/errors", response)


#: requests a generator finds only by luck: (method, path, query, headers, status)
ODD_REQUESTS = {
    "page in superscript digits": ("GET", "/errors", {"page": "²"}, {}, 400),
    "size in other-script digits": ("GET", "/errors", {"size": "١٠"}, {}, 400),
    "negative size": ("GET", "/errors", {"size": "-1"}, {}, 400),
    "empty page": ("GET", "/errors", {"page": ""}, {}, 400),
    "offset in superscript digits": ("GET", "/composes/{id}/logs", {"offset": "²"}, {}, 400),
    "fractional offset": ("GET", "/composes/{id}/logs", {"offset": "1.5"}, {}, 400),
    "huge offset": ("GET", "/composes/{id}/logs", {"offset": str(10**40)}, {}, 404),
    "compose as text/plain": ("POST", "/compose", {}, {"Content-Type": "text/plain"}, 415),
    "compose as an image": ("POST", "/compose", {}, {"Content-Type": "image/png"}, 415),
    "a GET saying its (empty) body is XML": (
        "GET",
        "/errors",
        {},
        {"Content-Type": "application/xml"},
        200,
    ),
    "a GET saying its (empty) body is an image": (
        "GET",
        "/errors",
        {},
        {"Content-Type": "image/png"},
        200,
    ),
}


@pytest.mark.parametrize("name", list(ODD_REQUESTS))
def test_odd_requests_get_the_documented_answer(face: Face, name: str) -> None:
    method, path, query, headers, status = ODD_REQUESTS[name]
    response = requests.request(
        method,
        face.base_url + _concrete(path),
        params=query,
        data=b"{}" if method == "POST" else None,
        headers={**face.headers, **headers},
        timeout=30,
    )
    assert response.status_code == status, response.text
    _conforms(method, path, response)


def test_an_error_id_in_superscript_digits_is_refused(face: Face) -> None:
    """API Gateway hands the view its path parameters decoded (chalice's local server does not):
    chalice's test client does the same."""
    response = face.kiln.client.http.get(f"{PREFIX}/errors/²", headers=face.headers)
    assert response.status_code == 400, response.body
    error = json.loads(response.body)
    assert error["kind"] == "Error" and error["id"] == "16", error


def _conforms(method: str, path: str, response: requests.Response) -> None:
    """The response is one the operation documents, in Kiln's document and (bodies only: see
    PUBLISHED_CHECKS) in the published one."""
    sent = urllib.parse.urlsplit(response.request.url).path.split("/")
    template = (PREFIX + path).split("/")
    parameters = {
        part[1:-1]: urllib.parse.unquote(value)
        for part, value in zip(template, sent, strict=True)
        if part.startswith("{")
    }
    operation = kiln_schema[path][method]
    operation.Case(path_parameters=parameters).validate_response(response, checks=KILN_CHECKS)
    if PUBLISHED_DOCUMENT.exists():
        other = published_schema[path][method]
        other.Case(path_parameters=parameters).validate_response(response, checks=PUBLISHED_CHECKS)


# -- composes through their life: every answer conforms at every stage ------------------------

MIRROR = "http://deb.example/debian"


def _image(arch: str, image_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "architecture": arch,
        "image_type": image_type,
        "repositories": [{"rhsm": False, "baseurl": MIRROR}],
        **extra,
    }


def _compose(face: Face, *images: dict[str, Any]) -> str:
    response = face.post("/compose", {"distribution": "debian-12", "image_requests": list(images)})
    assert response.status_code == 201, response.text
    _conforms("POST", "/compose", response)
    created = response.json()
    assert created["kind"] == "ComposeId"
    return str(created["id"])


def _all_conform(face: Face, compose_id: str, offset: int | None = None) -> dict[str, Any]:
    """GET status, metadata, logs and manifests; each conforms. Returns the bodies by path."""
    found = {}
    for path in ("/composes/{id}", "/composes/{id}/metadata", "/composes/{id}/manifests"):
        response = face.get(path.replace("{id}", compose_id))
        assert response.status_code == 200, response.text
        _conforms("GET", path, response)
        found[path] = response.json()
    query = {} if offset is None else {"offset": offset}
    response = face.get(f"/composes/{compose_id}/logs", params=query)
    assert response.status_code == 200, response.text
    _conforms("GET", "/composes/{id}/logs", response)
    found["/composes/{id}/logs"] = response.json()
    return found


def _executions(face: Face, compose_id: str) -> list[dict[str, Any]]:
    """The job messages of the compose's builds, as build hosts receive them, in image order."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = face.kiln.provisioned.state_machine_arn
    messages = []
    for item in sfn.list_executions(stateMachineArn=arn)["executions"]:
        message = json.loads(sfn.describe_execution(executionArn=item["executionArn"])["input"])
        if message.get("recipe", {}).get("key", "").startswith(f"composes/{compose_id}/"):
            messages.append(message)
    return sorted(messages, key=lambda m: m["recipe"]["key"])


def _put(face: Face, key: str, data: bytes) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=face.kiln.provisioned.bucket, Key=key, Body=data)


def test_a_compose_no_host_serves_conforms_while_it_waits(face: Face) -> None:
    compose_id = _compose(face, _image("aarch64", "guest-image"), _image("x86_64", "vsphere"))
    bodies = _all_conform(face, compose_id)
    assert bodies["/composes/{id}"]["status"] == "pending"
    manifests = bodies["/composes/{id}/manifests"]["manifests"]
    assert [m["format"] for m in manifests] == ["kiln-compose-plan/1"] * 2
    logs = bodies["/composes/{id}/logs"]["image_builds"]
    assert [b["image_index"] for b in logs] == [0, 1]
    assert "packages" not in bodies["/composes/{id}/metadata"]


def test_a_compose_whose_upload_target_is_refused_conforms(face: Face) -> None:
    gcp = _image("x86_64", "gcp", upload_options={"region": "eu", "bucket": "b"})
    azure = _image(
        "x86_64",
        "azure",
        upload_options={
            "tenant_id": "t",
            "subscription_id": "s",
            "resource_group": "g",
            "location": "westeurope",
        },
    )
    compose_id = _compose(face, gcp, azure)
    bodies = _all_conform(face, compose_id)
    status = bodies["/composes/{id}"]
    assert status["status"] == "failure"
    assert all(isinstance(s["error"]["id"], int) for s in status["image_statuses"])


LOG = "unpacking base-files\nsetting up café\n".encode() * 3


def _end_every_build(face: Face) -> None:
    """Earlier tests' builds hold the hosts (one job each): end them, and whatever waiting
    job each ending dispatches, so this test's images start at once."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    pages = sfn.get_paginator("list_executions")
    ended: set[str] = set()
    for _ in range(1000):  # each ending may dispatch one waiting job per arch
        arn = face.kiln.provisioned.state_machine_arn
        names = {
            e["name"] for page in pages.paginate(stateMachineArn=arn) for e in page["executions"]
        }
        if names <= ended:
            return
        for name in sorted(names - ended):
            failure = {"Error": "ended by the test"}
            face.kiln.build_events(
                {"type": "result", "outcome": "failure", "job_id": name, "error": failure}
            )
            ended.add(name)
    raise AssertionError("builds kept being dispatched")


def test_a_compose_conforms_at_every_stage_of_its_builds(face: Face) -> None:
    for arch in ("x86_64", "aarch64"):
        face.kiln.register_host(arch, xname=f"contract-{arch}")
    _end_every_build(face)
    compose_id = _compose(
        face,
        _image("x86_64", "guest-image"),
        _image(
            "aarch64",
            "aws",
            upload_options={"region": "eu-west-1", "share_with_accounts": ["123456789012"]},
        ),
    )
    builds = _executions(face, compose_id)
    assert len(builds) == 2
    _all_conform(face, compose_id)
    s3_job, ami_job = (b["job_id"] for b in builds)
    for state, upload in (
        ("fetching_recipe", None),
        ("building_image", None),
        ("uploading", {"type": "aws", "status": "running", "options": {}}),
        ("registering", {"type": "aws", "status": "running", "options": {}}),
    ):
        event = {"type": "progress", "job_id": ami_job, "status": state, "node": "contract"}
        if upload:
            event["upload_status"] = upload
        face.kiln.build_events(event)
        _all_conform(face, compose_id)
    half = len(LOG) // 2
    _put(face, f"{builds[0]['log_chunk_prefix']}000000.log", LOG[:half])
    _put(face, f"{builds[0]['log_chunk_prefix']}000001.log", LOG[half:])
    _logs_from_any_offset(face, compose_id)

    packages = [
        {"type": "deb", "name": "base-files", "version": "12.4+deb12u5", "release": ""}
        | {"epoch": "", "arch": "amd64", "sigmd5": "0" * 32}
    ]
    plan = {"format": "kiln-build-plan/1", "packages": [{"name": "base-files"}]}
    prefix = f"images/{builds[0]['image_id']}/"
    _put(face, f"{prefix}disk.qcow2", b"QFI\xfb")
    _put(face, f"{prefix}packages.json", json.dumps(packages).encode())
    _put(face, f"{prefix}build-plan.json", json.dumps(plan).encode())
    face.kiln.build_events(
        {
            "type": "result",
            "outcome": "success",
            "job_id": s3_job,
            "output": {
                "manifest": {"etag": "e"},
                "artifacts": [
                    {"key": f"{prefix}disk.qcow2", "type": "application/vnd.kiln.image.disk.qcow2"},
                    {"key": f"{prefix}packages.json", "type": "application/vnd.kiln.packages+json"},
                    {
                        "key": f"{prefix}build-plan.json",
                        "type": "application/vnd.kiln.build-plan+json",
                    },
                ],
                "upload_status": {
                    "type": "aws.s3",
                    "status": "success",
                    "options": {"key": f"{prefix}disk.qcow2"},
                },
            },
        },
        {
            "type": "result",
            "outcome": "failure",
            "job_id": ami_job,
            "error": {"Error": "register failed: AccessDenied"},
        },
    )
    bodies = _all_conform(face, compose_id)
    status = bodies["/composes/{id}"]
    assert status["status"] == "failure"
    assert [s["status"] for s in status["image_statuses"]] == ["success", "failure"]
    assert bodies["/composes/{id}/metadata"]["packages"]
    assert bodies["/composes/{id}/manifests"]["manifests"][0]["format"] == "kiln-build-plan/1"


def _logs_from_any_offset(face: Face, compose_id: str) -> None:
    """From any offset, the log is the bytes from there on; offset and size say so."""

    @given(offset=st.one_of(st.integers(0, len(LOG) + 8), st.integers(0, 2**63)))
    @FUZZ
    def check(offset: int) -> None:
        logs = _all_conform(face, compose_id, offset)["/composes/{id}/logs"]["image_builds"]
        running = logs[0]
        assert running["offset"] == offset and running["size"] == len(LOG)
        assert running["streaming"] is True
        with contextlib.suppress(UnicodeDecodeError):  # an offset inside a character
            assert running["log"] == LOG[offset:].decode()

    check()


def test_composes_followed_through_the_documents_links(face: Face) -> None:
    """schemathesis's stateful run: POST /compose, then the operations its 201 links to."""

    class Workflow(kiln_schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": face.base_url, "headers": face.headers}

        def validate_response(
            self, response: Any, case: schemathesis.Case, additional_checks: Any = None, **kw: Any
        ) -> None:
            case.validate_response(response, checks=KILN_CHECKS, transport_kwargs=kw)

    Workflow.run(settings=settings(FUZZ, max_examples=20, stateful_step_count=6))
