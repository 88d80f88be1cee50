"""Upstream Cachito's login-disabled mode, for clients that cannot send a token (Cachito's own
integration tests send none): with ``cachito_anonymous_tenant`` set, a call without an
Authorization header acts as an anonymous user of that tenant. Off by default: a 401."""

from __future__ import annotations

from tests.cachito import helpers as h
from tests.cachito.helpers import V1
from tests.conftest import Kiln

NO_TOKEN: dict[str, str] = {}


def test_without_the_setting_a_call_without_a_token_is_unauthorized(kiln: Kiln) -> None:
    response = kiln.call("POST", f"{V1}/requests", h.body(), headers=NO_TOKEN)
    assert response.status_code == 401
    assert response.json_body["error"].startswith("The server could not verify that you are")
    assert kiln.call("GET", f"{V1}/requests", headers=NO_TOKEN).status_code == 401


def test_with_login_disabled_anonymous_calls_work_in_that_tenant(kiln: Kiln) -> None:
    kiln.configure(cachito_anonymous_tenant="demo")
    created = kiln.call("POST", f"{V1}/requests", h.body(), headers=NO_TOKEN)
    assert created.status_code == 201, created.body
    assert created.json_body["user"] is None
    request_id = created.json_body["id"]
    shown = kiln.call("GET", f"{V1}/requests/{request_id}", headers=NO_TOKEN)
    assert shown.status_code == 200 and shown.json_body["id"] == request_id
    # the tenant's own users see it; another tenant does not
    assert kiln.call("GET", f"{V1}/requests/{request_id}").status_code == 200
    assert kiln.call("GET", f"{V1}/requests/{request_id}", tenant="beta").status_code == 404
    # a token still counts when one is sent
    mine = kiln.call("POST", f"{V1}/requests", h.body(ref="c" * 40), tenant="beta")
    assert mine.json_body["user"] != "" and mine.status_code == 201
    assert (
        kiln.call("GET", f"{V1}/requests/{mine.json_body['id']}", headers=NO_TOKEN).status_code
        == 404
    )


def test_with_login_disabled_user_cannot_be_set_and_patch_stays_for_workers(kiln: Kiln) -> None:
    kiln.configure(cachito_anonymous_tenant="demo", cachito_representatives="user@demo")
    refused = kiln.call("POST", f"{V1}/requests", h.body(user="tbrady"), headers=NO_TOKEN)
    assert refused.status_code == 400
    assert refused.json_body == {"error": 'Cannot set "user" when authentication is disabled'}
    request_id = h.create(kiln)["id"]
    patch = {"state": "failed", "state_reason": "no"}
    forbidden = kiln.call("PATCH", f"{V1}/requests/{request_id}", patch, headers=NO_TOKEN)
    assert forbidden.status_code == 403
    assert forbidden.json_body == {"error": "This API endpoint is restricted to Cachito workers"}
