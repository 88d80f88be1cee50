"""The Glance face behind chalice's test client, against moto in-process: two tenants, an
admin, and the queue-driven handlers (imports, upload events) run on demand."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import app as app_module
from chalicelib.config import GLANCE_IMPORTS_QUEUE, UPLOAD_EVENTS_QUEUE
from infra.local.event_sources import SqsPoller
from tests.conftest import Kiln
from tests.glance.http_support import PATCH_21, GlanceHttp, glance_http


@pytest.fixture(scope="module")
def served(signing_keys: tuple[bytes, str]) -> Iterator[GlanceHttp]:
    """The face over HTTP (Kiln's front and chalice's local server), one per test module."""
    with glance_http(signing_keys) as http:
        yield http


@dataclasses.dataclass
class Glance:
    kiln: Kiln

    def headers(self, tenant: str = "alpha", role: str = "user", **extra: str) -> dict[str, str]:
        return {
            "X-Auth-Token": self.kiln.token(tenant, role),
            "Accept": "application/json",
            **extra,
        }

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        tenant: str = "alpha",
        role: str = "user",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Any:
        if isinstance(body, bytes):
            payload: bytes | str | None = body
        else:
            payload = None if body is None else json.dumps(body)
        sent = headers if headers is not None else self.headers(tenant, role)
        if payload is not None:
            sent = {"Content-Type": content_type, **sent}
        return self.kiln.client.http.request(method, path, headers=sent, body=payload or b"")

    def create(self, tenant: str = "alpha", role: str = "user", **fields: Any) -> dict[str, Any]:
        body = {"disk_format": "raw", "container_format": "bare", **fields}
        response = self.call("POST", "/v2/images", body, tenant, role)
        assert response.status_code == 201, response.body
        return dict(response.json_body)

    def show(self, image_id: str, tenant: str = "alpha") -> Any:
        return self.call("GET", f"/v2/images/{image_id}", tenant=tenant)

    def patch(self, image_id: str, ops: Any, tenant: str = "alpha", kind: str = PATCH_21) -> Any:
        return self.call("PATCH", f"/v2/images/{image_id}", ops, tenant, content_type=kind)

    def upload(self, image_id: str, data: bytes, tenant: str = "alpha") -> Any:
        return self.call(
            "PUT",
            f"/v2/images/{image_id}/file",
            data,
            tenant,
            content_type="application/octet-stream",
        )

    def run_queue(self, queue: str, handler: Any) -> int:
        url = self.kiln.provisioned.queue_urls[queue]
        poller = SqsPoller(
            url,
            f"arn:aws:sqs:us-east-1:123456789012:{queue}",
            handler,
            10,
            threading.Event(),
            "us-east-1",
        )
        total = 0
        while handled := poller.poll_once():
            total += handled
        return total

    def run_imports(self) -> int:
        return self.run_queue(GLANCE_IMPORTS_QUEUE, app_module.on_glance_import)

    def run_upload_events(self) -> int:
        return self.run_queue(UPLOAD_EVENTS_QUEUE, app_module.on_upload_event)


@pytest.fixture
def glance(kiln: Kiln) -> Glance:
    return Glance(kiln)
