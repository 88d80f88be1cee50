"""Build hosts come back: N no-op jobs from two tenants, the x86_64 build host SIGKILLed K times
while they run, on the real local stack (the one `make up` runs).

The stack's supervisor restarts the host (same xname, still registered); the job it was
building is retried by the state machine (heartbeat timeout -> Retry) and built again. The host's
pid comes from stack.json (`build_host_processes`, rewritten on every restart). Kills are spaced:
each waits until the host is back, the previous kill's job has ended and another job is
building. Prints one table: jobs succeeded / failed / unfinished per tenant, and per kill the
restart time and the latency it added to the job it hit (that job's build, first progress to
answer, minus the median job's). Goal: every job succeeds and every kill lands; exits 1 if not.
Run: make bench  (or .venv/bin/python bench/chaos.py --jobs 20 --kills 1)
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.stack_harness import free_port  # noqa: E402
from infra.local.process import StackProcess  # noqa: E402
from infra.local.tokens import mint  # noqa: E402

ARCH = "x86_64"
XNAME = f"local-{ARCH}"
TENANTS = ("demo", "chaos")
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchBenchBenchBenchBenchBenchBenchBenchBe bench"
IN_FLIGHT = ("fetching_recipe", "waiting_for_repos", "building_image")
ENDED = ("success", "error")


def noop_archive(sleep: float) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = f"name: chaos\nsleep: {sleep}\n".encode()
        info = tarfile.TarInfo("recipe.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclasses.dataclass
class Tenant:
    name: str
    token: str
    recipe_id: str = ""
    key_id: str = ""


@dataclasses.dataclass
class Kill:
    at: float  # seconds since the jobs were sent
    pid: int
    victims: list[str]  # the jobs in flight on the host when it was killed
    restarted_after: float | None = None  # kill -> the new host process started, seconds


def prepare(stack: StackProcess, tenant: Tenant, sleep: float) -> None:
    """A public key and a ready kiln-noop recipe (sleeping ``sleep`` s) for the tenant."""
    key = stack.ims(
        "POST", "/v3/public-keys", token=tenant.token, json={"name": "b", "public_key": SSH_KEY}
    )
    key.raise_for_status()
    body = {"name": "chaos", "recipe_type": "kiln-noop", "linux_distribution": "debian12"}
    recipe = stack.ims("POST", "/v3/recipes", token=tenant.token, json=body)
    recipe.raise_for_status()
    tenant.key_id, tenant.recipe_id = key.json()["id"], recipe.json()["id"]
    grant = stack.ims("POST", f"/v3/recipes/{tenant.recipe_id}/upload", token=tenant.token)
    requests.put(
        grant.json()["upload_url"], data=noop_archive(sleep), timeout=30
    ).raise_for_status()
    deadline = time.time() + 30
    while time.time() < deadline:
        recipe = stack.ims("GET", f"/v3/recipes/{tenant.recipe_id}", token=tenant.token)
        if recipe.json()["archive"]["status"] == "ready":
            return
        time.sleep(0.1)
    raise RuntimeError(f"the recipe of tenant {tenant.name} never became ready")


def submit(stack: StackProcess, tenant: Tenant, n: int) -> str:
    body = {
        "job_type": "create",
        "artifact_id": tenant.recipe_id,
        "public_key_id": tenant.key_id,
        "image_root_archive_name": f"chaos-{n}",
    }
    response = stack.ims("POST", "/v3/jobs", token=tenant.token, json=body)
    response.raise_for_status()
    return str(response.json()["id"])


def snapshot(stack: StackProcess, tenants: list[Tenant], ids: set[str]) -> dict[str, Any]:
    """Every job of the run, by id, as the API shows it now."""
    jobs = {}
    for tenant in tenants:
        response = stack.ims("GET", "/v3/jobs", token=tenant.token)
        response.raise_for_status()
        jobs.update({job["id"]: {**job, "tenant": tenant.name} for job in response.json()})
    return {job_id: job for job_id, job in jobs.items() if job_id in ids}


def wait_restarted(stack: StackProcess, restarts: int, timeout: float = 30) -> float | None:
    """When (epoch) the host's ``restarts``-th restart started it, or None after ``timeout``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        host = stack.host_process(XNAME)
        if host["restarts"] >= restarts:
            return float(host["started"])
        time.sleep(0.05)
    return None


def run(args: argparse.Namespace) -> int:
    settings = {"KILN_BUILD_HOSTS": ARCH, "KILN_HEARTBEAT_SECONDS": str(args.heartbeat)}
    with (
        tempfile.TemporaryDirectory() as state,
        StackProcess(Path(state), free_port(), free_port(), **settings) as stack,
    ):
        private = (Path(state) / "jwt-private.pem").read_bytes()
        tenants = [Tenant(name, mint(private, name, "user")) for name in TENANTS]
        for tenant in tenants:
            prepare(stack, tenant, args.sleep)

        started = time.time()
        with ThreadPoolExecutor(max_workers=16) as pool:  # both tenants at once
            ids = list(pool.map(lambda n: submit(stack, tenants[n % 2], n), range(args.jobs)))
        sent = time.time() - started
        wanted = set(ids)
        kills: list[Kill] = []
        deadline = started + args.timeout
        jobs: dict[str, Any] = {}
        shown = 0.0
        while time.time() < deadline:
            jobs = snapshot(stack, tenants, wanted)
            ended = sum(1 for job in jobs.values() if job["status"] in ENDED)
            if ended == len(wanted):
                break
            if time.time() - shown >= 15:
                shown = time.time()
                print(f"{shown - started:6.0f} s: {ended} of {len(wanted)} jobs ended", flush=True)
            if len(kills) < args.kills and ready_to_kill(jobs, kills, ended, args):
                kills.append(kill_host(stack, jobs, started, len(kills) + 1))
            time.sleep(0.2)
        wall = time.time() - started
        log_tail = stack.output()
    return report(args, jobs, wanted, kills, wall, sent, log_tail)


def ready_to_kill(jobs: dict[str, Any], kills: list[Kill], ended: int, args: Any) -> bool:
    """Kill k (1..K) once k/(K+1) of the jobs have ended, the last kill's jobs have ended
    (so the host is back and working) and a job is building on the host right now."""
    due = len(kills) + 1
    if ended < due * len(jobs) / (args.kills + 1):
        return False
    if kills and any(jobs[v]["status"] not in ENDED for v in kills[-1].victims if v in jobs):
        return False
    now, early = time.time(), max(0.5, args.sleep - 0.5)  # so the kill lands mid-build
    return any(
        j["status"] == "building_image"
        and now - float((j.get("timing") or {}).get("host_started") or 0) < early
        for j in jobs.values()
    )


def kill_host(stack: StackProcess, jobs: dict[str, Any], started: float, nth: int) -> Kill:
    host = stack.host_process(XNAME)
    victims = [job_id for job_id, job in jobs.items() if job["status"] in IN_FLIGHT]
    killed_at = time.time()
    try:
        os.kill(int(host["pid"]), signal.SIGKILL)
    except PermissionError:  # a host started through sudo runs as root
        subprocess.run(["sudo", "-n", "kill", "-KILL", str(host["pid"])], check=True)
    kill = Kill(at=killed_at - started, pid=int(host["pid"]), victims=victims)
    back = wait_restarted(stack, int(host["restarts"]) + 1)
    if back is not None:
        kill.restarted_after = back - killed_at
    print(
        f"kill {nth}: pid {kill.pid} at {kill.at:.1f} s, jobs in flight {victims}, "
        f"host back after {f'{kill.restarted_after:.2f} s' if back is not None else 'NEVER'}",
        flush=True,
    )
    return kill


def build_seconds(job: dict[str, Any]) -> float | None:
    """A job's time on the host: its first progress report to its answer (every try)."""
    timing = job.get("timing") or {}
    if timing.get("host_started") is None or timing.get("host_answered") is None:
        return None
    return float(timing["host_answered"]) - float(timing["host_started"])


def report(
    args: argparse.Namespace,
    jobs: dict[str, Any],
    wanted: set[str],
    kills: list[Kill],
    wall: float,
    sent: float,
    log_tail: str,
) -> int:
    victims = {v for kill in kills for v in kill.victims}
    calm = [s for j, job in jobs.items() if j not in victims and (s := build_seconds(job))]
    median = statistics.median(calm) if calm else 0.0
    print(
        f"\nKiln chaos benchmark: {args.jobs} no-op jobs ({args.sleep:g} s each) from "
        f"{len(TENANTS)} tenants, host {XNAME} SIGKILLed {len(kills)} of {args.kills} times, "
        f"HeartbeatSeconds {args.heartbeat}\n"
    )
    print(f"{'tenant':<12}{'jobs':>6}{'succeeded':>11}{'failed':>8}{'unfinished':>12}")
    totals = [0, 0, 0, 0]
    for tenant in (*TENANTS, "all"):
        mine = [j for j in jobs.values() if tenant in ("all", j["tenant"])]
        if tenant == "all":
            missing = len(wanted) - len(jobs)  # never listed: count as unfinished
            row = [len(wanted), *totals[1:3], totals[3] + missing]
        else:
            row = [
                len(mine),
                sum(1 for j in mine if j["status"] == "success"),
                sum(1 for j in mine if j["status"] == "error"),
                sum(1 for j in mine if j["status"] not in ENDED),
            ]
            totals = [a + b for a, b in zip(totals, row, strict=True)]
        print(f"{tenant:<12}{row[0]:>6}{row[1]:>11}{row[2]:>8}{row[3]:>12}")
    print(f"\nmedian job on the host (first progress -> answer): {median:.2f} s")
    print(
        f"\n{'kill':<6}{'at s':>8}{'host back s':>13}{'job hit':>12}{'its build s':>13}"
        f"{'added s':>9}{'status':>10}"
    )
    for nth, kill in enumerate(kills, 1):
        back = f"{kill.restarted_after:.2f}" if kill.restarted_after is not None else "never"
        for victim in kill.victims or ["-"]:
            job = jobs.get(victim, {})
            took = build_seconds(job)
            print(
                f"{nth:<6}{kill.at:>8.1f}{back:>13}{victim[:8]:>12}"
                f"{took if took is None else f'{took:.2f}':>13}"
                f"{'-' if took is None else f'{took - median:.2f}':>9}"
                f"{job.get('status', '-'):>10}"
            )
    finished = "all ended" if all(j["status"] in ENDED for j in jobs.values()) else "gave up"
    print(f"\nsent {len(wanted)} jobs in {sent:.2f} s; {finished} after {wall:.1f} s (wall)")
    failures = [j for j in jobs.values() if j["status"] == "error"]
    for job in failures[:10]:
        print(f"  failed {job['id']} ({job['tenant']}): {job['status_reason']}")
    ok = (
        len(jobs) == len(wanted)
        and all(j["status"] == "success" for j in jobs.values())
        and len(kills) == args.kills
        and all(kill.restarted_after is not None for kill in kills)
    )
    print(f"goal: all {len(wanted)} jobs succeed, {args.kills} kills land: {'yes' if ok else 'NO'}")
    if not ok:
        print("\nlast of the stack's output:\n" + log_tail[-3000:])
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--sleep", type=float, default=2.0, help="each no-op build's seconds")
    parser.add_argument(
        "--heartbeat", type=int, default=5, help="HeartbeatSeconds (KILN_HEARTBEAT_SECONDS)"
    )
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds to wait for every job to end"
    )
    raise SystemExit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
