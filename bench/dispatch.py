"""Dispatch latency through the real local stack (the one `make up` runs), no-op backend.

For N jobs, one after another:
  dispatch  = POST /v3/jobs sent            -> the build host reports its first step
  callback  = host sends SendTaskSuccess    -> GET /v3/jobs/{id} shows success
Goal: p50 <= 0.5 s for each. Run: make bench  (or .venv/bin/python bench/dispatch.py --jobs 20)
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.stack_harness import free_port  # noqa: E402
from infra.local.process import StackProcess  # noqa: E402

GOAL_SECONDS = 0.5
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchBenchBenchBenchBenchBenchBenchBenchBe bench"


def noop_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = b"name: bench\n"
        info = tarfile.TarInfo("recipe.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def prepare(stack: StackProcess) -> tuple[str, str]:
    key = stack.ims("POST", "/v3/public-keys", json={"name": "bench", "public_key": SSH_KEY})
    recipe = stack.ims(
        "POST",
        "/v3/recipes",
        json={"name": "bench", "recipe_type": "kiln-noop", "linux_distribution": "debian12"},
    ).json()
    grant = stack.ims("POST", f"/v3/recipes/{recipe['id']}/upload").json()
    requests.put(grant["upload_url"], data=noop_archive(), timeout=30).raise_for_status()
    while stack.ims("GET", f"/v3/recipes/{recipe['id']}").json()["archive"]["status"] != "ready":
        time.sleep(0.05)
    return recipe["id"], key.json()["id"]


def one_job(stack: StackProcess, recipe_id: str, key_id: str) -> tuple[float, float]:
    body = {
        "job_type": "create",
        "artifact_id": recipe_id,
        "public_key_id": key_id,
        "image_root_archive_name": "bench",
    }
    sent = time.time()
    job = stack.ims("POST", "/v3/jobs", json=body).json()
    deadline = sent + 60
    while time.time() < deadline:
        current = stack.ims("GET", f"/v3/jobs/{job['id']}").json()
        if current["status"] in ("success", "error"):
            seen = time.time()
            if current["status"] != "success":
                raise RuntimeError(f"job failed: {current['status_reason']}")
            timing = current["timing"]
            return timing["host_started"] - sent, seen - timing["host_answered"]
        time.sleep(0.01)
    raise RuntimeError(f"job {job['id']} did not finish in 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as state,
        StackProcess(Path(state), free_port(), free_port()) as stack,
    ):
        recipe_id, key_id = prepare(stack)
        one_job(stack, recipe_id, key_id)  # warm-up, not counted
        dispatch, callback = [], []
        for _ in range(args.jobs):
            d, c = one_job(stack, recipe_id, key_id)
            dispatch.append(d)
            callback.append(c)
    print(f"\nKiln dispatch benchmark: {args.jobs} jobs, no-op backend, local stack\n")
    print(f"{'measure':<44}{'p50 s':>8}{'p95 s':>8}{'max s':>8}{'goal p50':>10}{'ok':>5}")
    for name, values in (
        ("POST -> host starts", dispatch),
        ("host callback -> record shows success", callback),
    ):
        p50 = statistics.median(values)
        print(
            f"{name:<44}{p50:>8.3f}{percentile(values, 95):>8.3f}{max(values):>8.3f}"
            f"{GOAL_SECONDS:>10.1f}{'yes' if p50 <= GOAL_SECONDS else 'NO':>5}"
        )


if __name__ == "__main__":
    main()
