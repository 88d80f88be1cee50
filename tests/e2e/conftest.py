from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.local.process import StackProcess
from tests.conftest import free_port


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    """One `make up` stack for every end-to-end test of the run."""
    with StackProcess(tmp_path_factory.mktemp("stack"), free_port(), free_port()) as running:
        yield running
