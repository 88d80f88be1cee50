"""OMPS health ping and about (omps-behaviour.md §11), over HTTP through the chalice test client,
with a real Koji hub and Greenwave on loopback (tests/omps/koji_hub.py)."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Iterator
from typing import Any

import boto3
import koji  # type: ignore[import-untyped]
import pytest

from chalicelib.adapters.appregistry_models import AppPackageModel
from tests.conftest import REGION, Kiln, _shared_botocore_session, free_port
from tests.omps.koji_hub import GreenwaveServer, KojiHubServer

VERSIONS = ("v1", "v2")
IT_WORKS = {"ok": True, "details": "It works!"}


@pytest.fixture
def hub() -> Iterator[KojiHubServer]:
    with KojiHubServer() as server:
        yield server


@pytest.fixture
def greenwave() -> Iterator[GreenwaveServer]:
    with GreenwaveServer() as server:
        yield server


def ping(kiln: Kiln, version: str = "v1") -> tuple[int, dict[str, Any]]:
    """The ping, as an uptime checker asks it: no Authorization, no other header."""
    answer = kiln.client.http.get(f"/omps/{version}/health/ping")
    assert answer.headers["Content-Type"] == "application/json"
    return answer.status_code, json.loads(answer.body)


@pytest.mark.parametrize("version", VERSIONS)
def test_ping_without_koji_or_greenwave_configured_checks_the_registry_only(
    kiln: Kiln, version: str
) -> None:
    status, body = ping(kiln, version)
    assert status == 200
    assert body == {
        "ok": True,
        "status": 200,
        "services": {"quay": IT_WORKS, "koji": None, "greenwave": None},
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_ping_with_koji_and_greenwave_all_working(
    kiln: Kiln, hub: KojiHubServer, greenwave: GreenwaveServer, version: str
) -> None:
    kiln.configure(omps_koji_hub_url=hub.hub_url, omps_greenwave_url=greenwave.base_url)
    status, body = ping(kiln, version)
    assert status == 200
    assert body == {
        "ok": True,
        "status": 200,
        "services": {"quay": IT_WORKS, "koji": IT_WORKS, "greenwave": IT_WORKS},
    }
    assert ("getAPIVersion", ()) in hub.calls


def test_ping_with_the_koji_hub_unreachable_is_503_with_the_failure_text(kiln: Kiln) -> None:
    hub_url = f"http://127.0.0.1:{free_port()}/kojihub"  # nothing listens there
    kiln.configure(omps_koji_hub_url=hub_url)
    with pytest.raises(Exception) as raised:  # what the koji library itself says
        koji.ClientSession(hub_url, opts={"anon_retry": False}).getAPIVersion()

    status, body = ping(kiln)
    assert status == 503
    assert body["ok"] is False and body["status"] == 503
    assert body["services"]["quay"] == IT_WORKS
    assert body["services"]["koji"] == {"ok": False, "details": str(raised.value)}
    assert "Connection refused" in body["services"]["koji"]["details"]
    assert body["services"]["greenwave"] is None


def test_ping_with_the_koji_hub_faulting_reports_the_fault(kiln: Kiln, hub: KojiHubServer) -> None:
    hub.faults["getAPIVersion"] = "Server is offline for maintenance"
    kiln.configure(omps_koji_hub_url=hub.hub_url)
    status, body = ping(kiln, "v2")
    assert status == 503
    assert body["services"]["koji"] == {
        "ok": False,
        "details": "Server is offline for maintenance",
    }


def test_ping_with_greenwave_failing_is_503(kiln: Kiln, greenwave: GreenwaveServer) -> None:
    greenwave.about_status = 503
    kiln.configure(omps_greenwave_url=greenwave.base_url)
    status, body = ping(kiln)
    assert status == 503
    assert body["services"]["koji"] is None
    assert body["services"]["greenwave"] == {
        "ok": False,
        "details": "Failed to get Greenwave version: 503 Server Error: Service Unavailable "
        f"for url: {greenwave.base_url}api/v1.0/about",
    }


def test_ping_with_greenwave_unreachable_is_503(kiln: Kiln) -> None:
    kiln.configure(omps_greenwave_url=f"http://127.0.0.1:{free_port()}/")
    status, body = ping(kiln)
    assert status == 503
    details = body["services"]["greenwave"]["details"]
    assert details.startswith("Failed to get Greenwave version: ") and "refused" in details


def test_ping_with_the_registry_unavailable_is_503(kiln: Kiln) -> None:
    # the packages table goes away: the registry cannot answer
    boto3.client("dynamodb", region_name=REGION).delete_table(
        TableName=AppPackageModel.Meta.table_name
    )
    status, body = ping(kiln)
    assert status == 503
    quay = body["services"]["quay"]
    assert quay["ok"] is False and "ResourceNotFoundException" in quay["details"]


def test_ping_reads_one_record_and_never_scans(kiln: Kiln) -> None:
    operations: list[str] = []

    def record(model: Any, **_: Any) -> None:
        operations.append(model.name)

    session = _shared_botocore_session()
    session.register("before-call.dynamodb", record)
    try:
        assert ping(kiln)[0] == 200
    finally:
        session.unregister("before-call.dynamodb", record)
    assert operations == ["GetItem"]


def test_ping_answers_head(kiln: Kiln) -> None:
    assert kiln.client.http.head("/omps/v2/health/ping").status_code == 200


@pytest.mark.parametrize("version", VERSIONS)
def test_about_reports_the_service_and_installed_operator_courier_versions(
    kiln: Kiln, version: str
) -> None:
    answer = kiln.client.http.get(f"/omps/{version}/about")
    assert answer.status_code == 200
    assert json.loads(answer.body) == {
        "version": "11.2",
        "operatorcourier": importlib.metadata.version("operator-courier"),
    }


def test_about_version_is_configured(kiln: Kiln) -> None:
    kiln.configure(omps_version="11.2-kiln")
    answer = kiln.client.http.get("/omps/v1/about")
    assert json.loads(answer.body)["version"] == "11.2-kiln"
