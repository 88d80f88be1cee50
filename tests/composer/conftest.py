from __future__ import annotations

import pytest

from tests.conftest import Kiln


@pytest.fixture
def hosts(kiln: Kiln) -> Kiln:
    """Registered, heartbeating build nodes for both arches: composes get dispatched."""
    kiln.register_host("x86_64", xname="x86-host")
    kiln.register_host("aarch64", xname="arm-host")
    return kiln
