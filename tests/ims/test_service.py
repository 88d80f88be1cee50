from __future__ import annotations

import pytest

from chalicelib.domain.ims import recipes
from tests.conftest import Kiln
from tests.ims.helpers import V3


def test_unexpected_failure_is_a_500_problem(kiln: Kiln, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_principal: object) -> list:
        raise RuntimeError("table went away")

    monkeypatch.setattr(recipes, "list_for", broken)
    response = kiln.call("GET", f"{V3}/recipes")
    assert response.status_code == 500
    assert response.json_body == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "An internal error occurred.",
        "instance": f"{V3}/recipes",
    }
