"""The IMS face fuzzed with the published IMS document (specs/ims/ims-v3-openapi.yaml):
schemathesis generates valid and invalid requests for every operation (the /v3 API, the legacy
API under /v2 and unversioned, deleted records, build nodes, healthz) and sends them over HTTP
through Kiln's local front; no answer may be a 5xx. As an admin, so every code path is open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import ROOT
from tests.served import Served, served_kiln

DOCUMENT = ROOT / "specs" / "ims" / "ims-v3-openapi.yaml"
CONFIG = schemathesis.Config.from_dict(
    {
        "phases": {
            "coverage": {
                "unexpected-methods": ["get", "put", "post", "delete", "options", "patch", "trace"]
            }
        }
    }
)
FUZZ = settings(
    max_examples=12,
    deadline=None,
    database=None,  # every run starts afresh
    suppress_health_check=list(HealthCheck),
)
schema = schemathesis.openapi.from_path(DOCUMENT, config=CONFIG)


@pytest.fixture(scope="module")
def served(signing_keys: tuple[bytes, str]) -> Iterator[Served]:
    with served_kiln(signing_keys) as running:
        yield running


@schema.parametrize()
@FUZZ
def test_no_request_gets_a_server_error(case: schemathesis.Case, served: Served) -> None:
    token = served.kiln.token(role="admin")
    case.call_and_validate(
        base_url=f"{served.url}/apis/ims",
        headers={"Authorization": f"Bearer {token}"},
        checks=[not_a_server_error],
    )
