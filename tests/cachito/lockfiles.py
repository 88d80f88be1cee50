"""Real lockfiles for test and benchmark projects, written by the tools themselves."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any


def npm_lockfile(work: Path, manifest: dict[str, Any]) -> str:
    """The package-lock.json (v3) npm writes for ``manifest`` from the registry, no scripts."""
    (work / "package.json").write_text(json.dumps(manifest), encoding="utf-8")
    subprocess.run(
        ["npm", "install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=work,
        check=True,
        capture_output=True,
        env={**os.environ, "npm_config_cache": str(work / ".npm-lock")},
    )
    return (work / "package-lock.json").read_text(encoding="utf-8")
