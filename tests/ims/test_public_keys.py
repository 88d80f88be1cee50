from __future__ import annotations

import pytest

from tests.conftest import Kiln
from tests.ims.helpers import SSH_KEY, V3


@pytest.mark.parametrize("prefix", ["/apis/ims/v3", "/apis/ims", "/apis/ims/v2"])
def test_create_list_get(kiln: Kiln, prefix: str) -> None:
    created = kiln.call("POST", f"{prefix}/public-keys", {"name": "me", "public_key": SSH_KEY})
    assert created.status_code == 201
    key = created.json_body
    assert key["public_key"] == SSH_KEY and key["name"] == "me" and key["created"]
    assert kiln.call("GET", f"{prefix}/public-keys").json_body == [key]
    assert kiln.call("GET", f"{prefix}/public-keys/{key['id']}").json_body == key


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"public_key": SSH_KEY}, "name"),
        ({"name": "x"}, "public_key"),
        ({"name": "", "public_key": SSH_KEY}, "name"),
        ({"name": "x", "public_key": "hello"}, "public_key"),
        ({"name": "x", "public_key": 5}, "public_key"),
    ],
)
def test_invalid_key_is_422(kiln: Kiln, body: dict, field: str) -> None:
    response = kiln.call("POST", f"{V3}/public-keys", body)
    assert response.status_code == 422 and field in response.json_body["errors"]
    assert kiln.call("GET", f"{V3}/public-keys").json_body == []


def test_unknown_key_is_404(kiln: Kiln) -> None:
    assert (
        kiln.call("GET", f"{V3}/public-keys/66db1862-fa14-44c6-ae4b-6a6cc8cdc34a").status_code
        == 404
    )
