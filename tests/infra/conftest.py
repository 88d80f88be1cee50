from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.moto_with_data import Moto


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def started(data_dir: Path) -> Iterator[list[Moto]]:
    running: list[Moto] = []
    yield running
    for moto in running:
        if moto.process is not None and moto.process.poll() is None:
            moto.stop()
