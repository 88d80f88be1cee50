"""Kiln's Glance Image API v2 against a real Glance on this machine.

Measures create+show pairs/s; sequential upload (PUT /v2/images/{id}/file, streamed) and
download MiB/s of a 128 MiB and a 2 GiB image, and the peak memory meanwhile, against Kiln
and against a real Glance (bench/real_glance.py: glance 33.0.0 under gunicorn, file store,
installed into .kiln/bench/glance-venv on first use); and list latency for tenants owning
1,000 and 10,000 images (and 100 beside a tenant holding 10,000). Kiln's memory is the sum
of the peak resident sizes (VmHWM) of the stack's processes (the stack with its front, moto,
any other process it started but build hosts); Glance's, its gunicorn worker's. Prints one
table; exits 0 when a goal is missed (it is a report), 1 when Kiln answered with an HTTP error.
Run: .venv/bin/python bench/glance.py [--quick] [--no-glance] [--url URL --state-dir DIR]
By default it starts its own stack (KILN_BUILD_HOSTS=none, its data in a data dir) in a
temporary directory.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import datetime
import hashlib
import math
import os
import platform
import statistics
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import real_glance  # noqa: E402
from bench.stack_harness import (  # noqa: E402
    free_port,
    peak_mib,
    process_tree,
    reset_peaks,
    stack_process,
    table,
)
from infra.local.tokens import mint  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
#: Kiln's data rates against Glance's, measured here: "as fast", within the measures' noise
AS_FAST = 0.95
PAIRS = 300
LIST_REQUESTS = 200
SEED_THREADS = 8
CREATE = {"disk_format": "raw", "container_format": "bare"}
Row = tuple[str, str, str, str, str]


class KilnError(Exception):
    """Kiln answered with an unexpected status: the exact request and response."""

    def __init__(self, response: requests.Response, expected: int) -> None:
        request = response.request
        body = request.body if isinstance(request.body, bytes | str) else None
        sent = body.decode(errors="replace") if isinstance(body, bytes) else body
        headers = {k: "<token>" if k == "X-Auth-Token" else v for k, v in request.headers.items()}
        super().__init__(
            f"{request.method} {request.url} (expected {expected}, got {response.status_code})\n"
            f"  request headers: {headers}\n"
            f"  request body: {sent[:500] if sent is not None else '(streamed)'}\n"
            f"  response headers: {dict(response.headers)}\n"
            f"  response body: {response.text[:2000]}"
        )


def check(response: requests.Response, expected: int) -> requests.Response:
    if response.status_code != expected:
        raise KilnError(response, expected)
    return response


class Glance:
    """One tenant's keep-alive session against /v2/images."""

    def __init__(self, url: str, token: str | None) -> None:
        """``token``: None for a Glance without authentication (bench/real_glance.py)."""
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json"})
        if token is not None:
            self.session.headers["X-Auth-Token"] = token

    def create(self, name: str) -> dict[str, Any]:
        response = self.session.post(f"{self.url}/v2/images", json={"name": name, **CREATE})
        return dict(check(response, 201).json())

    def show(self, image_id: str) -> dict[str, Any]:
        return dict(check(self.session.get(f"{self.url}/v2/images/{image_id}"), 200).json())

    def list(self, limit: int = 25) -> list[dict[str, Any]]:
        response = self.session.get(f"{self.url}/v2/images", params={"limit": limit})
        return list(check(response, 200).json()["images"])


class RandomBody:
    """`size` bytes in 1 MiB random-ish chunks, md5 hashed as they are sent. Iterable with a
    length: requests sends Content-Length and urllib3 writes each chunk as it comes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.md5 = hashlib.md5()
        self.sent = 0
        self._pool = [os.urandom(MiB) for _ in range(16)]

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        for index in range(math.ceil(self.size / MiB)):
            block = self._pool[index % len(self._pool)]
            chunk = (struct.pack(">Q", index) + block[8:])[: self.size - index * MiB]
            self.md5.update(chunk)
            self.sent += len(chunk)
            yield chunk


def bench_pairs(glance: Glance) -> float:
    def pair(index: int) -> None:
        image = glance.create(f"pair-{index}")
        if glance.show(image["id"])["id"] != image["id"]:
            raise RuntimeError(f"show of {image['id']} returned another image")

    for index in range(5):  # warm-up: the connection, caches
        pair(-index)
    start = time.perf_counter()
    for index in range(PAIRS):
        pair(index)
    return PAIRS / (time.perf_counter() - start)


def bench_data(glance: Glance, size: int) -> tuple[float, float]:
    image = glance.create(f"data-{size // MiB}MiB")
    url = f"{glance.url}/v2/images/{image['id']}/file"
    body = RandomBody(size)
    start = time.perf_counter()
    response = glance.session.put(
        url, data=body, headers={"Content-Type": "application/octet-stream"}
    )
    check(response, 204)
    upload = size / MiB / (time.perf_counter() - start)
    shown = glance.show(image["id"])
    want = {"status": "active", "size": size, "checksum": body.md5.hexdigest()}
    got = {key: shown.get(key) for key in want}
    if body.sent != size or got != want:
        raise RuntimeError(f"after the upload (sent {body.sent} bytes): want {want}, got {got}")

    md5, received = hashlib.md5(), 0
    start = time.perf_counter()
    with glance.session.get(url, stream=True) as response:
        check(response, 200)
        for chunk in response.iter_content(MiB):
            md5.update(chunk)
            received += len(chunk)
        header = response.headers.get("Content-MD5", "")
    download = received / MiB / (time.perf_counter() - start)
    if received != size or md5.hexdigest() != want["checksum"]:
        raise RuntimeError(f"download: {received} bytes, md5 {md5.hexdigest()}; want {want}")
    if header not in (want["checksum"], _b64(want["checksum"])):
        raise RuntimeError(f"download: Content-MD5 {header!r}, want {want['checksum']}")
    check(glance.session.delete(f"{glance.url}/v2/images/{image['id']}"), 204)  # the disk back
    return upload, download


def _b64(hex_digest: str) -> str:
    return base64.b64encode(binascii.unhexlify(hex_digest)).decode()


def seed(url: str, token: str, count: int, label: str) -> None:
    local = threading.local()
    done = [0]
    lock = threading.Lock()
    start = time.perf_counter()

    def create(index: int) -> None:
        if not hasattr(local, "glance"):
            local.glance = Glance(url, token)
        local.glance.create(f"{label}-{index}")
        with lock:
            done[0] += 1
            if done[0] % 1000 == 0 or done[0] == count:
                rate = done[0] / (time.perf_counter() - start)
                print(f"  seeded {done[0]:,}/{count:,} for {label} ({rate:.0f}/s)", flush=True)

    with ThreadPoolExecutor(SEED_THREADS) as pool:
        for future in [pool.submit(create, index) for index in range(count)]:
            future.result()


def list_latency(glance: Glance, owned: int) -> tuple[float, float]:
    expected = min(25, owned)
    for _ in range(5):  # warm-up
        glance.list()
    times: list[float] = []
    for _ in range(LIST_REQUESTS):
        start = time.perf_counter()
        images = glance.list()
        times.append((time.perf_counter() - start) * 1000)
        if len(images) != expected:
            raise RuntimeError(f"list returned {len(images)} images, want {expected}")
    times.sort()
    return statistics.median(times), times[math.ceil(0.99 * len(times)) - 1]


def label(size: int) -> str:
    return f"{size // GiB} GiB" if size >= GiB and size % GiB == 0 else f"{size // MiB} MiB"


def measure_data(glance: Glance, size: int, pids: list[int]) -> tuple[float, float, float | None]:
    """Upload and download MiB/s of one ``size`` image, and the peak memory (MiB) of
    ``pids`` meanwhile (None without processes to watch)."""
    reset_peaks(pids)
    up, down = bench_data(glance, size)
    return up, down, peak_mib(pids) if pids else None


def compare_data(
    kiln: Glance,
    stack_pid: int | None,
    sizes: list[int],
    glance_venv: Path | None,
    add: Callable[..., None],
) -> None:
    """Kiln against a real Glance (none when ``glance_venv`` is None), each size in turn."""
    kiln_pids = process_tree(stack_pid) if stack_pid else []
    with contextlib.ExitStack() as stack:
        real = None
        if glance_venv is not None:
            print("starting a real Glance (bench/real_glance.py)...", flush=True)
            real = stack.enter_context(real_glance.running(free_port(), glance_venv))
        for size in sizes:
            print(f"upload and download of {label(size)}: Kiln...", flush=True)
            ours = measure_data(kiln, size, kiln_pids)
            theirs: tuple[float, float, float | None] | None = None
            if real is not None:
                print(f"upload and download of {label(size)}: Glance...", flush=True)
                theirs = measure_data(Glance(real.url, None), size, real.worker_pids())
            for index, what in ((0, "upload"), (1, "download")):
                mine = ours[index] or 0.0
                other = theirs[index] if theirs else None
                add(
                    f"{what} {label(size)}",
                    f"{mine:.0f} MiB/s",
                    f"{other:.0f} MiB/s" if other else "-",
                    f"≥ Glance's (×{AS_FAST})",
                    None if not other else mine >= AS_FAST * other,
                )
            memory = [ours[2], theirs[2] if theirs else None]
            add(
                f"peak memory, {label(size)} up+down",
                *[f"{value:.0f} MiB" if value is not None else "-" for value in memory],
                "reported (Kiln: the stack's processes)",
            )


def run(
    url: str,
    key: bytes,
    quick: bool,
    rows: list[Row],
    stack_pid: int | None,
    venv: Path | None,
    data_only: bool = False,
) -> None:
    run_id = uuid.uuid4().hex[:6]

    def token(name: str) -> str:
        return mint(key, f"bench-{run_id}-{name}", "user")

    def add(measure: str, kiln: str, glance: str, goal: str, met: bool | None = None) -> None:
        result = "-" if met is None else "PASS" if met else "FAIL <-- goal missed"
        rows.append((measure, kiln, glance, goal, result))
        print(f"  => {measure}: Kiln {kiln}, Glance {glance} ({result})", flush=True)

    sizes = [128 * MiB] if quick else [128 * MiB, 2 * GiB]
    compare_data(Glance(url, token("data")), stack_pid, sizes, venv, add)
    if data_only:
        return

    print(f"create+show: {PAIRS} pairs...", flush=True)
    rate = bench_pairs(Glance(url, token("pairs")))
    goal = "≥ 46/s (2× Glance 23/s)"
    add(f"create+show pairs/s (N={PAIRS})", f"{rate:.1f}/s", "-", goal, rate >= 46)

    small, large = (200, 2000) if quick else (1000, 10000)
    p50s: dict[str, float] = {}
    for name, count, text in (
        ("small", small, f"{small:,} images"),
        ("large", large, f"{large:,} images"),
        ("beside", 100, f"100 images, other tenant {large:,}"),
    ):
        print(f"seeding {count:,} images, then {LIST_REQUESTS} lists...", flush=True)
        seed(url, token(name), count, f"{run_id}-{name}")
        p50s[name], p99 = list_latency(Glance(url, token(name)), count)
        goal = "reported (Glance p50 ~20 ms at 1,000)" if name == "small" else "grows mildly"
        add(f"list limit=25 p50/p99: {text}", f"{p50s[name]:.1f} / {p99:.1f} ms", "-", goal)
    ratio = p50s["large"] / p50s["small"]
    goal = "grows mildly (≤ 2×)"
    add(f"list p50 ratio {large:,} / {small:,}", f"{ratio:.2f}×", "-", goal, ratio <= 2)


HEAD = ("measure", "Kiln", "Glance", "goal", "result")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running Kiln (needs --state-dir for its signing key)")
    parser.add_argument("--state-dir", help="the running stack's state directory")
    parser.add_argument("--quick", action="store_true", help="200/2,000 images, 128 MiB only")
    parser.add_argument("--no-glance", action="store_true", help="measure Kiln alone")
    parser.add_argument("--data-only", action="store_true", help="no create or list measures")
    parser.add_argument(
        "--glance-venv",
        type=Path,
        default=real_glance.DEFAULT_VENV,
        help="the real Glance's venv (made there on first use)",
    )
    args = parser.parse_args()
    if args.url and not args.state_dir:
        parser.error("--url needs --state-dir (the signing key mints the tenants' tokens)")
    cpus = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line]
    cpu = cpus[0].split(":", 1)[1].strip() if cpus else platform.machine()
    print(
        f"Kiln Glance bench, {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}"
        f"{' (quick)' if args.quick else ''}\n"
        f"machine: {os.cpu_count()} cores ({cpu}), load {os.getloadavg()[0]:.2f}, "
        f"Python {platform.python_version()}, {platform.platform()}",
        flush=True,
    )
    rows: list[Row] = []
    error: Exception | None = None
    venv = None if args.no_glance else args.glance_venv
    with stack_process(args.url, args.state_dir) as (url, key, pid):
        try:
            run(url, key, args.quick, rows, pid, venv, args.data_only)
        except (KilnError, RuntimeError, requests.RequestException) as exc:
            error = exc
    print(f"\n{table(HEAD, rows)}\n(load average at the end: {os.getloadavg()[0]:.2f})")
    if error is not None:
        print(f"\nERROR: Kiln failed, the remaining measures were not taken:\n{error}")
        return 1
    missed = sum(row[4].startswith("FAIL") for row in rows)
    print(f"\n{missed} goal(s) missed." if missed else "\nAll goals met.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
