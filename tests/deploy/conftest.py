"""The synthesized cloud assembly, one synth per set of inputs for every test worker and
session (infra/deploy_check: ``.kiln/cdk-synth-cache/<hash>``, made under a file lock).

``KILN_DEPLOY_CHECK_ASSEMBLY=<cdk.out dir>`` checks an assembly synthesized elsewhere instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from infra.deploy_check import Synth, synthesized


@pytest.fixture(scope="session")
def synth() -> Synth:
    given = os.environ.get("KILN_DEPLOY_CHECK_ASSEMBLY")
    if given:
        return Synth(Path(given), 0, f"(an assembly given: {given})", 0.0)
    return synthesized()


@pytest.fixture(scope="session")
def assembly(synth: Synth) -> Synth:
    """The synth, which must have succeeded (its output shown when it did not)."""
    if synth.returncode != 0:
        pytest.fail(
            f"python -m infra.cdk.synth exited {synth.returncode}:\n{synth.output[-6000:]}",
            pytrace=False,
        )
    if not synth.templates:
        pytest.fail(f"the synth wrote no *.template.json to {synth.out}", pytrace=False)
    return synth


@pytest.fixture(scope="session")
def templates(assembly: Synth) -> dict[str, dict[str, Any]]:
    return assembly.templates
