"""The `kiln` command line against Kiln served over HTTP in this process (tests/served.py: the
app behind Kiln's local front, moto in-process, no build hosts), run as tests/cli/runner.py
runs it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.runner import KilnCommand
from tests.conftest import free_port
from tests.served import Served, served_kiln


@pytest.fixture(scope="module")
def served(signing_keys: tuple[bytes, str]) -> Iterator[Served]:
    """One served Kiln per test module."""
    with served_kiln(signing_keys) as running:
        yield running


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def bare_kiln(home: Path) -> KilnCommand:
    """``kiln`` with nothing configured."""
    return KilnCommand(home, {})


@pytest.fixture
def kiln_cmd(served: Served, home: Path) -> KilnCommand:
    """``kiln`` configured by the environment for the served Kiln, as user of tenant demo."""
    return KilnCommand(home, {"KILN_URL": served.url, "KILN_TOKEN": served.kiln.token()})


@pytest.fixture
def closed_url() -> str:
    """A URL nothing listens at."""
    return f"http://127.0.0.1:{free_port()}"
