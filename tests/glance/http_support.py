"""What the Glance face's fuzz and hostile-input tests share: the app served over HTTP by
Kiln's local front and by chalice's local server (tests/served.py), a client that speaks as
Glance's clients do (X-Auth-Token), seeded images in several states, and Glance's error format.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import requests

from tests.conftest import Kiln
from tests.served import served_kiln

PATCH_21 = "application/openstack-images-v2.1-json-patch"
PATCH_20 = "application/openstack-images-v2.0-json-patch"
# Images (and a member) the fuzzer's path parameters are drawn from besides its own UUIDs, so that
# operations reach real records in various states, not only 404s. Put back when deleted.
QUEUED = "00000000-0000-4000-8000-00000000f001"  # alpha's, raw/bare, no data
ACTIVE = "00000000-0000-4000-8000-00000000f002"  # alpha's, with data, a tag and member beta
BARE = "00000000-0000-4000-8000-00000000f003"  # alpha's, no formats
BETAS = "00000000-0000-4000-8000-00000000f004"  # beta's, shared with alpha
SEEDS = (QUEUED, ACTIVE, BARE, BETAS)
DATA = b"kiln image data " * 64
UNKNOWN = "12345678-1234-4234-8234-1234567890ab"


@dataclasses.dataclass
class GlanceHttp:
    """Kiln's app behind the local front (``front``: what `make up` serves, streaming data
    routes included) and chalice's local server (``chalice``: every route a Chalice route, as
    behind API Gateway), against the same moto."""

    front: str
    chalice: str
    kiln: Kiln
    tokens: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)

    def token(self, tenant: str = "alpha", role: str = "user") -> str:
        if (tenant, role) not in self.tokens:  # minting takes ~30 ms
            self.tokens[tenant, role] = self.kiln.token(tenant, role)
        return self.tokens[tenant, role]

    def headers(self, tenant: str = "alpha", role: str = "user", **extra: str) -> dict[str, str]:
        return {"X-Auth-Token": self.token(tenant, role), "Accept": "application/json", **extra}

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        tenant: str = "alpha",
        role: str = "user",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        base: str | None = None,
        params: Any = None,
    ) -> requests.Response:
        """``body``: bytes as they are, anything else as JSON text."""
        sent = self.headers(tenant, role)
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            sent["Content-Type"] = content_type
        sent.update(headers or {})
        return requests.request(
            method,
            (base or self.front) + path,
            data=data,
            headers=sent,
            params=params,
            timeout=60,
            allow_redirects=False,
        )

    def image(self, tenant: str = "alpha", role: str = "user", **fields: Any) -> str:
        body = {"disk_format": "raw", "container_format": "bare", **fields}
        response = self.request("POST", "/v2/images", body, tenant=tenant, role=role)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def upload(self, image_id: str, data: bytes = DATA) -> None:
        response = self.request(
            "PUT",
            f"/v2/images/{image_id}/file",
            data,
            content_type="application/octet-stream",
        )
        assert response.status_code == 204, response.text

    def seed(self) -> None:
        """The seeded images, made again where one is gone (the fuzzer deleted it)."""
        for image_id in SEEDS:
            tenant = "beta" if image_id == BETAS else "alpha"
            shown = self.request("GET", f"/v2/images/{image_id}", tenant=tenant)
            if shown.status_code == 200:
                continue
            fields: dict[str, Any] = {"id": image_id}
            if image_id == BARE:
                fields = {"id": image_id, "disk_format": None, "container_format": None}
            self.image(tenant, **fields)
            member = {ACTIVE: "beta", BETAS: "alpha"}.get(image_id)
            if member:
                added = self.request(
                    "POST", f"/v2/images/{image_id}/members", {"member": member}, tenant=tenant
                )
                assert added.status_code == 200, added.text
            if image_id == ACTIVE:
                self.upload(image_id)
                tagged = self.request("PUT", f"/v2/images/{image_id}/tags/seed")
                assert tagged.status_code == 204, tagged.text


@contextlib.contextmanager
def glance_http(signing_keys: tuple[bytes, str]) -> Iterator[GlanceHttp]:
    """The face on both servers against one moto, with the seeded images made."""
    with served_kiln(signing_keys, chalice_server=True) as served:
        http = GlanceHttp(served.url, served.chalice_url, served.kiln)
        http.seed()
        yield http


def glance_error(response: requests.Response, status: int | None = None) -> dict[str, Any]:
    """A 4xx (``status`` when given) in Glance's JSON error format; its body."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    if status is not None:
        assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"message", "code", "title"}, body
    assert body["code"] == f"{response.status_code} {body['title']}", body
    return dict(body)
