from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.local.process import StackProcess
from tests.conftest import free_port


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    """One `make up` stack for every end-to-end test of the run."""
    go_proxy = tmp_path_factory.mktemp("go-proxy")  # tests/cachito/go_proxy.py fills it
    with StackProcess(
        tmp_path_factory.mktemp("stack"),
        free_port(),
        free_port(),
        # Cachito requests fetch the tests' git repositories from loopback, and Go modules
        # from a file:// proxy the tests build (the public Go proxy is out of reach here)
        KILN_CACHITO_ALLOW="127.0.0.0/8",
        KILN_CACHITO_GOPROXY=go_proxy.as_uri(),
        KILN_CACHITO_GOSUMDB="off",
    ) as running:
        running.go_proxy = go_proxy
        yield running
