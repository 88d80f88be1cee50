"""The build cache (docs/build-cache.md) on the real local stack (the one `make up` runs): the
smallest kiln-debian example recipe (examples/recipes/minimal) built through IMS twice.

The first job builds (mmdebstrap, squashfs, a Debian mirror); the second resolves the same
plan and is served from the cache. Prints one table: each job's seconds from its creation to
its success (the job record's ``created`` and ``finished``), its ``timing.cache`` and host
stages, and the ratio. Goal: the cached job under 2% of the first and under 5 s; exits 1 when
it is missed (or a job fails).
Run: make bench  (or .venv/bin/python bench/cache.py [--url URL --state-dir DIR])
By default it starts its own stack (with this machine's build host) in a temporary directory.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.stack_harness import free_port, table  # noqa: E402
from infra.local.process import StackProcess  # noqa: E402
from tests.conftest import example_archive  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "minimal"
GOAL_RATIO, GOAL_SECONDS = 0.02, 5.0
SSH_KEY = ROOT / "tests" / "e2e" / "id_test.pub"


class Ims:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.headers = url, {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(
            method, f"{self.url}{path}", headers=self.headers, timeout=30, **kwargs
        )
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None


def recipe(ims: Ims) -> dict[str, Any]:
    """The example recipe through IMS: POST, PUT the archive, wait for its upload event."""
    body = json.loads((ROOT / "examples" / "recipes" / RECIPE / "recipe.json").read_text())
    created = ims.call("POST", "/v3/recipes", json=body)
    grant = ims.call("POST", f"/v3/recipes/{created['id']}/upload")
    put = requests.put(grant["upload_url"], data=example_archive(RECIPE), timeout=60)
    if put.status_code != 200:
        raise RuntimeError(f"the archive upload failed: {put.status_code}")
    deadline = time.time() + 60
    while time.time() < deadline:
        current = ims.call("GET", f"/v3/recipes/{created['id']}")
        if current["archive"]["status"] == "ready":
            return dict(current)
        time.sleep(0.2)
    raise RuntimeError("the recipe archive never became ready")


def build(ims: Ims, recipe_id: str, key_id: str, timeout: float) -> dict[str, Any]:
    body = {
        "job_type": "create",
        "artifact_id": recipe_id,
        "public_key_id": key_id,
        "image_root_archive_name": "bench-minimal",
    }
    job = ims.call("POST", "/v3/jobs", json=body)
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = ims.call("GET", f"/v3/jobs/{job['id']}")
        if job["status"] in ("success", "error"):
            if job["status"] != "success":
                raise RuntimeError(f"job {job['id']} failed: {job['status_reason']}")
            return dict(job)
        time.sleep(0.2)
    raise RuntimeError(f"job {job['id']} still {job['status']} after {timeout:.0f} s")


def seconds(job: dict[str, Any]) -> float:
    """From the job's creation to its success, as the job record has them."""
    created, finished = (
        datetime.datetime.fromisoformat(job[field].replace("Z", "+00:00"))
        for field in ("created", "finished")
    )
    return (finished - created).total_seconds()


def stages(job: dict[str, Any]) -> str:
    shown = job.get("timing") or {}
    return ", ".join(f"{k} {v:.1f}" for k, v in (shown.get("stages") or {}).items())


def measure(api: dict[str, str], token: str, timeout: float) -> tuple[list[tuple[str, ...]], bool]:
    ims = Ims(api["ims_url"], token)
    made = recipe(ims)
    key = ims.call(
        "POST", "/v3/public-keys", json={"name": "bench", "public_key": SSH_KEY.read_text()}
    )
    print("first build (mmdebstrap)...", flush=True)
    first = build(ims, made["id"], key["id"], timeout)
    print("the same recipe again...", flush=True)
    second = build(ims, made["id"], key["id"], 120)
    one, two = seconds(first), seconds(second)
    ratio = two / one
    met = bool(second["timing"].get("cache") == "hit" and ratio < GOAL_RATIO)
    met = met and two < GOAL_SECONDS
    rows: list[tuple[str, ...]] = [
        ("first build", f"{one:.1f} s", str(first["timing"].get("cache")), stages(first)),
        ("cached build", f"{two:.2f} s", str(second["timing"].get("cache")), stages(second)),
        ("ratio", f"{ratio:.2%}", "", f"goal: < {GOAL_RATIO:.0%} and < {GOAL_SECONDS:.0f} s"),
    ]
    return rows, met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running Kiln's IMS URL (with --state-dir)")
    parser.add_argument("--state-dir", help="the running stack's state directory")
    parser.add_argument("--timeout", type=float, default=1800, help="the first build's limit")
    args = parser.parse_args()
    print(
        f"Kiln build cache bench, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M}\n"
        f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, "
        f"Python {platform.python_version()}; recipe examples/recipes/{RECIPE}",
        flush=True,
    )
    if args.state_dir:
        info = json.loads((Path(args.state_dir) / "stack.json").read_text())
        api = {"ims_url": args.url or info["ims_url"]}
        rows, met = measure(api, info["tokens"]["user"], args.timeout)
    else:
        with tempfile.TemporaryDirectory(prefix="kiln-bench-cache-") as temp:
            print(f"starting a stack in {temp}...", flush=True)
            with StackProcess(Path(temp), free_port(), free_port()) as stack:
                rows, met = measure(stack.info, stack.info["tokens"]["user"], args.timeout)
    print("\n" + table(("IMS job", "created -> success", "cache", "host stages (s)"), rows))
    print("goal met" if met else "GOAL MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
