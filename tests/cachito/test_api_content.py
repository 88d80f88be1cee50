"""Content manifests and SBOMs over HTTP (one request, ``?requests=`` of several and its
refusals), the status routes, /healthcheck, the face's OpenAPI document, and the bundle
download streamed through Kiln's local front the way atomic-reactor reads it."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import yaml
from openapi_spec_validator import validate

from chalicelib.faces.cachito.routing import NOT_FOUND
from tests.cachito import helpers as h
from tests.cachito.helpers import REF, V1
from tests.conftest import ROOT, Kiln
from tests.served import Served, served_kiln

DOCUMENT = ROOT / "chalicelib" / "faces" / "cachito" / "kiln-cachito-v1.yaml"
EMPTY_MANIFEST_KEYS = {"icm_version", "icm_spec", "image_layer_index"}


def error(response: Any, status: int = 400) -> str:
    assert response.status_code == status, response.body
    return str(response.json_body["error"])


def complete(kiln: Kiln, ref: str = REF, tenant: str = "demo") -> int:
    request_id = int(h.create(kiln, ref=ref, tenant=tenant, pkg_managers=["gomod", "npm"])["id"])
    h.complete(kiln, request_id)
    return request_id


# -- one request's content manifest ------------------------------------------------------------
def test_a_requests_content_manifest_needs_complete_or_stale(kiln: Kiln) -> None:
    running = h.create(kiln)["id"]
    assert error(h.get(kiln, f"/requests/{running}/content-manifest")) == (
        'Content manifests are only available for requests in the "complete" or "stale" states'
    )
    done = complete(kiln, "1" * 40)
    manifest = h.get(kiln, f"/requests/{done}/content-manifest").json_body
    assert set(manifest["metadata"]) == EMPTY_MANIFEST_KEYS
    assert manifest["metadata"]["image_layer_index"] == -1
    purls = [entry["purl"] for entry in manifest["image_contents"]]
    assert purls == [f"pkg:github/release-engineering/retrodep@{REF}#client"]
    assert manifest["image_contents"][0]["dependencies"] == [{"purl": "pkg:npm/abbrev@1.1.1"}]
    stale = {"state": "stale", "state_reason": "The request has expired"}
    assert h.patch(kiln, done, stale).status_code == 200
    gone = h.get(kiln, f"/requests/{done}/content-manifest").json_body
    assert gone["image_contents"] == []
    assert error(h.get(kiln, f"/requests/{done}/content-manifest", tenant="beta"), 404) == (
        NOT_FOUND
    )


# -- ?requests= ---------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["/content-manifest", "/sbom"])
def test_requests_argument_refusals(kiln: Kiln, route: str) -> None:
    done = complete(kiln)
    running = h.create(kiln, ref="2" * 40)["id"]
    failed = h.create(kiln, ref="3" * 40)["id"]
    h.fail(kiln, failed, "BuildFailed: InvalidRequestData: nope")
    assert error(h.get(kiln, f"{route}?requests=1,a100")) == "a100 is not an integer."
    assert error(h.get(kiln, f"{route}?requests=1,-2")) == "-2 is not an integer."
    assert error(h.get(kiln, f"{route}?requests=9,{done},8")) == "Cannot find request(s) 8,9."
    assert error(h.get(kiln, f"{route}?requests={done}", tenant="beta")) == (
        f"Cannot find request(s) {done}."
    )
    assert error(h.get(kiln, f"{route}?requests={failed},{done},{running}")) == (
        f"Request {running} is in state in_progress, not in {{'complete'}}.\n"
        f"Request {failed} is in state failed, not in {{'complete'}}.\n"
    )
    assert error(h.get(kiln, f"{route}?requests={done}&x=1")) == (
        "Extra query parameter(s) x not in spec"
    )


def test_merged_content_manifest_of_several_requests(kiln: Kiln) -> None:
    assert h.get(kiln, "/content-manifest").json_body["image_contents"] == []
    assert h.get(kiln, "/content-manifest?requests=").json_body["image_contents"] == []
    first = complete(kiln)
    second = complete(kiln, "4" * 40)
    merged = h.get(kiln, f"/content-manifest?requests={first},,{second},{first},")
    assert merged.status_code == 200
    purls = [entry["purl"] for entry in merged.json_body["image_contents"]]
    assert purls == [f"pkg:github/release-engineering/retrodep@{REF}#client"]  # merged once
    other = dict(h.PACKAGES[0], purl="pkg:github/org/other@" + "5" * 40)
    third = int(h.create(kiln, ref="5" * 40, pkg_managers=["npm"])["id"])
    h.complete(kiln, third, packages=[other])
    merged = h.get(kiln, f"/content-manifest?requests={third},{first}")
    purls = [entry["purl"] for entry in merged.json_body["image_contents"]]
    assert purls == sorted(purls) and len(purls) == 2
    assert set(merged.json_body["metadata"]) == EMPTY_MANIFEST_KEYS
    text = merged.body.decode() if isinstance(merged.body, bytes) else merged.body
    assert text.index('"image_contents"') < text.index('"metadata"')  # keys sorted


def test_sbom_is_cachitos_cyclonedx_14_or_kilns_16(kiln: Kiln) -> None:
    empty = h.get(kiln, "/sbom").json_body
    assert empty == {"bomFormat": "CycloneDX", "specVersion": "1.4", "version": 1, "components": []}
    done = complete(kiln)
    sbom = h.get(kiln, f"/sbom?requests={done}").json_body
    assert sbom["specVersion"] == "1.4" and "metadata" not in sbom
    purls = [c["purl"] for c in sbom["components"]]
    assert "pkg:npm/chai@4.2.0" in purls and purls == sorted(purls)
    full = h.get(kiln, f"/sbom?requests={done}&format=cyclonedx-1.6").json_body
    assert full["specVersion"] == "1.6" and full["dependencies"]
    assert h.get(kiln, f"/sbom?requests={done}&format=cyclonedx-1.4").json_body == sbom
    assert error(h.get(kiln, "/sbom?format=spdx")) == (
        "'spdx' is not one of ['cyclonedx-1.4', 'cyclonedx-1.6']"
    )


# -- status, healthcheck, the document ----------------------------------------------------------
def test_status_without_and_with_a_cachito_host(kiln: Kiln) -> None:
    short = kiln.call("GET", f"{V1}/status/short", headers={})  # no token needed
    assert short.status_code == 503
    assert short.json_body == {"ok": False, "reason": "no workers are available"}
    kiln.register_host(xname="ims-host")  # builds images, not Cachito requests
    kiln.register_host(xname="cachito-host", job_types=("cachito",))
    status = kiln.call("GET", f"{V1}/status", headers={}).json_body
    assert status["workers"] == [{"name": "cachito-host", "ok": True}]
    assert status["services"] == [{"name": "dynamodb", "ok": True}, {"name": "s3", "ok": True}]
    assert status["can_process"] == {
        "git-submodule": True,
        "gomod": True,
        "npm": True,
        "pip": True,
        "yarn": True,
    }
    assert kiln.call("GET", f"{V1}/status/short", headers={}).json_body == {"ok": True}
    kiln.heartbeat(xname="cachito-host", job_types=("cachito",), accepting=False)
    status = kiln.call("GET", f"{V1}/status", headers={}).json_body
    assert status["workers"] == [
        {"name": "cachito-host", "ok": False, "reason": "not accepting jobs"}
    ]
    assert not any(status["can_process"].values())


def test_status_short_names_a_service_that_is_down(kiln: Kiln) -> None:
    kiln.register_host(xname="cachito-host", job_types=("cachito",))
    kiln.configure(artifact_bucket="no-such-bucket")
    short = kiln.call("GET", f"{V1}/status/short", headers={})
    assert short.status_code == 503
    assert short.json_body["ok"] is False
    assert short.json_body["reason"].startswith("s3 unavailable: ")
    services = kiln.call("GET", f"{V1}/status", headers={}).json_body["services"]
    assert services[1]["name"] == "s3" and services[1]["ok"] is False


def test_healthcheck(kiln: Kiln) -> None:
    answered = kiln.call("GET", "/healthcheck", headers={})
    assert answered.status_code == 200 and answered.body in (b"OK", "OK")
    assert answered.headers["Content-Type"] == "text/plain"


def test_the_document_is_valid_openapi_and_covers_every_route(kiln: Kiln) -> None:
    document = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    validate(document)
    import app as app_module

    served = {
        (path.removeprefix(V1), method.lower())
        for path, entries in app_module.app.routes.items()
        if path.startswith(f"{V1}/") or path == "/healthcheck"
        for method in entries
    }
    documented = (
        {(path, method) for path, item in document["paths"].items() for method in item}
        - {(path, "parameters") for path in document["paths"]}
        - {(path, "servers") for path in document["paths"]}
    )
    assert served == documented
    answered = kiln.call("GET", f"{V1}/openapi", headers={})
    assert answered.status_code == 200 and answered.json_body["info"]["title"] == "Kiln Cachito API"


# -- the download as atomic-reactor reads it, through the local front ---------------------------
@pytest.fixture
def served(signing_keys: tuple[bytes, str]) -> Iterator[Served]:
    with served_kiln(signing_keys) as running:
        yield running


def test_the_streamed_download_carries_the_digest_the_client_checks(served: Served) -> None:
    kiln = served.kiln
    created = served.call("POST", f"{V1}/requests", h.body())
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    data = h.complete(kiln, request_id, bundle=h.bundle_archive({"app/big": b"x" * 3_000_000}))
    headers = {"Authorization": f"Bearer {kiln.token()}"}
    url = f"{served.url}{V1}/requests/{request_id}/download"
    with requests.get(url, headers=headers, stream=True, timeout=60) as response:
        assert response.status_code == 200 and not response.history  # no redirect
        body = b"".join(response.iter_content(65536))
        digest = response.headers["Digest"]
        assert response.headers["Content-Disposition"] == (
            f"attachment; filename=cachito-{request_id}.tar.gz"
        )
        assert response.headers["Content-Type"] == "application/gzip"
    assert body == data
    assert digest == "sha-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
    other = requests.get(url, headers={"Authorization": f"Bearer {kiln.token('beta')}"}, timeout=60)
    assert other.status_code == 404 and other.json() == {"error": NOT_FOUND}
    anonymous = requests.get(url, timeout=60)
    assert anonymous.status_code == 401
    key = h.record(request_id).bundle_key
    h.s3().put_object(Bucket=kiln.provisioned.bucket, Key=key, Body=b"tampered")
    changed = requests.get(url, headers=headers, timeout=60)
    assert changed.status_code == 500
    assert changed.json() == {
        "error": f"Checksum of bundle archive {request_id}.tar.gz has changed."
    }
