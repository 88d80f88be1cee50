"""Greenwave's gating of Koji pushes (omps-behaviour.md §9 step 4), over HTTP through the chalice
test client, against a real Koji hub, file server and Greenwave on loopback: the decision asked,
its three failures with their exact messages and ``greenwave_response``, and the pushes that
never ask (Greenwave not configured, Koji failing first, zip uploads)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3

from tests.conftest import Kiln, free_port
from tests.omps.koji_hub import KojiWorld, koji_world
from tests.omps.operators import PACKAGE, flat_operator

ORG = "kiln-gated"
NVR = "kiln-demo-operator-metadata-0.2.0-1"
UNSATISFIED = {
    "policies_satisfied": False,
    "summary": "1 of 1 required test results missing",
    "unsatisfied_requirements": [
        {"type": "test-result-missing", "testcase": "cvp.verify", "subject_type": "koji_build"}
    ],
}


@pytest.fixture
def world(kiln: Kiln) -> Iterator[KojiWorld]:
    with koji_world() as found:
        kiln.configure(**found.settings(greenwave=True))
        found.release(NVR, flat_operator())
        yield found


def koji_push(kiln: Kiln, path: str) -> tuple[int, dict[str, Any]]:
    answer = kiln.client.http.post(
        f"/omps{path}", headers={"Authorization": f"Bearer {kiln.token()}"}
    )
    return answer.status_code, json.loads(answer.body)


def test_a_satisfied_decision_lets_the_push_through(kiln: Kiln, world: KojiWorld) -> None:
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")
    assert status == 200, body
    assert (body["repo"], body["version"], body["nvr"]) == (PACKAGE, "1.0.0", NVR)
    assert world.greenwave.decisions == [
        {
            "decision_context": "osbs_push",
            "product_version": "cvp",
            "subject_identifier": NVR,
            "subject_type": "koji_build",
        }
    ]


def test_an_unsatisfied_decision_is_400_with_the_whole_decision(
    kiln: Kiln, world: KojiWorld
) -> None:
    world.greenwave.decide(200, UNSATISFIED)
    status, body = koji_push(kiln, f"/v1/{ORG}/{PACKAGE}/koji/{NVR}")
    assert (status, body) == (
        400,
        {
            "status": 400,
            "error": "GreenwaveUnsatisfiedError",
            "message": f"Policies for nvr {NVR} were not satisfied",
            "greenwave_response": UNSATISFIED,
        },
    )
    assert len(world.files.requests) == 1  # the archive was fetched first (§9: steps 3, 4)
    # nothing was pushed: the next push that passes still gets the default version
    world.greenwave.decide(200, {"policies_satisfied": True})
    assert koji_push(kiln, f"/v1/{ORG}/{PACKAGE}/koji/{NVR}")[1]["version"] == "1.0.0"


@pytest.mark.parametrize(
    ("answer", "greenwave_response"),
    [
        ({"message": "Failed to evaluate policies"}, {"message": "Failed to evaluate policies"}),
        (b"<html>Bad Gateway</html>", {}),
    ],
)
def test_an_error_status_is_greenwave_error(
    kiln: Kiln, world: KojiWorld, answer: Any, greenwave_response: Any
) -> None:
    world.greenwave.decide(502, answer)
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")
    assert (status, body) == (
        500,
        {
            "status": 500,
            "error": "GreenwaveError",
            "message": "Greenwave unexpected response code: 502",
            "greenwave_response": greenwave_response,
        },
    )


@pytest.mark.parametrize(
    ("answer", "greenwave_response"),
    [({"summary": "no verdict"}, {"summary": "no verdict"}), (b"not json", {})],
)
def test_an_answer_without_the_verdict_is_greenwave_error(
    kiln: Kiln, world: KojiWorld, answer: Any, greenwave_response: Any
) -> None:
    world.greenwave.decide(200, answer)
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")
    assert (status, body) == (
        500,
        {
            "status": 500,
            "error": "GreenwaveError",
            "message": f"Missing key 'policies_satisfied' in answer for nvr {NVR}",
            "greenwave_response": greenwave_response,
        },
    )


def test_greenwave_unreachable_is_greenwave_error(kiln: Kiln, world: KojiWorld) -> None:
    kiln.configure(omps_greenwave_url=f"http://127.0.0.1:{free_port()}/")
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")
    assert (status, body["error"], body["greenwave_response"]) == (500, "GreenwaveError", {})
    assert body["message"].startswith("Request failed: ")
    assert "Connection refused" in body["message"]


def test_greenwave_is_not_asked_when_koji_fails_first(kiln: Kiln, world: KojiWorld) -> None:
    status, body = koji_push(kiln, f"/v2/{ORG}/koji/missing-1-1")
    assert (status, body["error"]) == (404, "KojiNVRBuildNotFound")
    assert world.greenwave.decisions == []


def test_greenwave_is_not_asked_unless_configured(kiln: Kiln, world: KojiWorld) -> None:
    kiln.configure(omps_greenwave_url="")
    world.greenwave.decide(200, UNSATISFIED)
    assert koji_push(kiln, f"/v2/{ORG}/koji/{NVR}")[0] == 200
    assert world.greenwave.decisions == []


def test_zip_uploads_never_ask_greenwave(kiln: Kiln, world: KojiWorld) -> None:
    world.greenwave.decide(200, UNSATISFIED)
    body, content_type = urllib3.encode_multipart_formdata(
        {"file": ("operator_manifests.zip", flat_operator(), "application/zip")}
    )
    answer = kiln.client.http.post(
        f"/omps/v2/{ORG}/zipfile",
        headers={"Authorization": f"Bearer {kiln.token()}", "Content-Type": content_type},
        body=body,
    )
    assert answer.status_code == 200, answer.body
    assert "nvr" not in json.loads(answer.body)
    assert world.greenwave.decisions == []
