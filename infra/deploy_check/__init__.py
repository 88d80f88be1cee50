"""Checks of the AWS deployment that need no AWS account (docs/deploy-checks.md): the ASL
validator (asl.py), a smoke deploy of the synthesized templates into moto's CloudFormation
(moto_deploy.py) and deployed-vs-local resource comparison (compare.py).

``synthesized()`` runs ``python -m infra.cdk.synth`` once per set of inputs: its output is kept
under ``.kiln/cdk-synth-cache/<hash of the inputs>/``, made under a file lock, so every test
worker of a session (and the next session, when nothing changed) reads the same assembly.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".kiln" / "cdk-synth-cache"
#: the synth's concrete environment: asset bucket names and ARNs come out as literals
ACCOUNT = "123456789012"
REGION = "us-east-1"
#: what the synthesized templates depend on (directories: every file below, caches excepted)
INPUTS = (
    "infra/cdk",
    "infra/resources.py",
    "infra/statemachines",
    "app.py",
    "chalicelib",
    ".chalice/config.json",
    "requirements.txt",
    "requirements-cdk.txt",
)
KEEP = 3  # cache entries kept (the newest)
SYNTH_TIMEOUT = 900


@dataclasses.dataclass(frozen=True)
class Synth:
    out: Path  # the cloud assembly (cdk.out) directory
    returncode: int
    output: str  # the synth's stdout and stderr
    seconds: float

    @property
    def templates(self) -> dict[str, dict[str, Any]]:
        """Each ``*.template.json`` by its file name."""
        return {
            path.name: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(self.out.glob("*.template.json"))
        }


def inputs_hash() -> str:
    digest = hashlib.sha256()
    for name in INPUTS:
        path = ROOT / name
        files = [path] if path.is_file() else sorted(path.rglob("*")) if path.exists() else []
        for file in files:
            if not file.is_file() or "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            digest.update(str(file.relative_to(ROOT)).encode() + b"\0")
            digest.update(file.read_bytes() + b"\0")
    digest.update(f"{ACCOUNT}/{REGION}/{sys.version_info[:2]}".encode())
    return digest.hexdigest()[:16]


def synth_environment() -> dict[str, str]:
    return {
        **os.environ,
        "CDK_DEFAULT_ACCOUNT": ACCOUNT,
        "CDK_DEFAULT_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
    }


def synthesized() -> Synth:
    """The synth for the current inputs: from the cache, or run now (once, under the lock)."""
    if not (ROOT / "infra" / "cdk" / "synth.py").exists():
        raise FileNotFoundError("infra/cdk/synth.py is missing: there is no CDK app to synth")
    CACHE.mkdir(parents=True, exist_ok=True)
    entry = CACHE / inputs_hash()
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = entry / "result.json"
        if not result.exists():
            _run_synth(entry)
            _prune(keep=entry)
        recorded = json.loads(result.read_text(encoding="utf-8"))
    return Synth(entry / "out", recorded["returncode"], recorded["output"], recorded["seconds"])


def _run_synth(entry: Path) -> None:
    shutil.rmtree(entry, ignore_errors=True)
    entry.mkdir(parents=True)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "infra.cdk.synth", "--out", str(entry / "out")],
        cwd=ROOT,
        env=synth_environment(),
        capture_output=True,
        text=True,
        timeout=SYNTH_TIMEOUT,
    )
    recorded = {
        "returncode": done.returncode,
        "output": done.stdout + done.stderr,
        "seconds": round(time.monotonic() - started, 1),
    }
    (entry / "result.json").write_text(json.dumps(recorded), encoding="utf-8")


def _prune(keep: Path) -> None:
    entries = [p for p in CACHE.iterdir() if p.is_dir() and p != keep]
    entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP - 1 :]:
        shutil.rmtree(old, ignore_errors=True)
