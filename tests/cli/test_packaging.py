"""The project is pip-installable: its wheel carries the ``kiln`` console script and the CLI's
package (and nothing of the service), with the CLI's dependencies declared."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_installs_the_kiln_command(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: setuptools leaves build/ where it builds
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copytree(
        ROOT / "kiln_cli", source / "kiln_cli", ignore=shutil.ignore_patterns("__pycache__")
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = tmp_path.glob("kiln-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "kiln_cli/main.py" in names
    assert not [n for n in names if n.startswith(("chalicelib/", "builders/", "tests/"))]
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "kiln = kiln_cli.main:main" in scripts
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    requires = [
        line.split(":", 1)[1].strip()
        for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]
    assert {r.split(">")[0] for r in requires} >= {"click", "rich", "requests", "securesystemslib"}
