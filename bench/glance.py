"""Kiln's Glance Image API v2 against the goals set from a real Glance on this machine.

Measures create+show pairs/s, upload and download MiB/s of one image, and list latency for
tenants owning 1,000 and 10,000 images (and 100 beside a tenant holding 10,000). Prints one
table; exits 0 when a goal is missed (it is a report), 1 when Kiln answered with an HTTP error.
Run: .venv/bin/python bench/glance.py [--quick] [--url URL --state-dir DIR]
By default it starts its own stack (KILN_BUILD_HOSTS=none) in a temporary directory.
"""

from __future__ import annotations

import argparse
import base64
import binascii
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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.stack_harness import stack, table  # noqa: E402
from infra.local.tokens import mint  # noqa: E402

MiB = 1 << 20
PAIRS = 300
LIST_REQUESTS = 200
SEED_THREADS = 8
CREATE = {"disk_format": "raw", "container_format": "bare"}
Row = tuple[str, str, str, str]


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

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update({"X-Auth-Token": token, "Accept": "application/json"})

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


def run(url: str, key: bytes, quick: bool, rows: list[Row]) -> None:
    run_id = uuid.uuid4().hex[:6]

    def token(name: str) -> str:
        return mint(key, f"bench-{run_id}-{name}", "user")

    def add(measure: str, kiln: str, goal: str, met: bool | None = None) -> None:
        result = "-" if met is None else "PASS" if met else "FAIL <-- goal missed"
        rows.append((measure, kiln, goal, result))
        print(f"  => {measure}: {kiln} ({result})", flush=True)

    small, large = (200, 2000) if quick else (1000, 10000)
    size = (64 if quick else 256) * MiB
    print(f"create+show: {PAIRS} pairs...", flush=True)
    rate = bench_pairs(Glance(url, token("pairs")))
    add(f"create+show pairs/s (N={PAIRS})", f"{rate:.1f}/s", "≥ 46/s (2× Glance 23/s)", rate >= 46)

    print(f"upload and download of {size // MiB} MiB...", flush=True)
    up, down = bench_data(Glance(url, token("data")), size)
    add(f"upload {size // MiB} MiB", f"{up:.0f} MiB/s", "≥ 140 MiB/s", up >= 140)
    add(f"download {size // MiB} MiB", f"{down:.0f} MiB/s", "reported (Glance ~1 GiB/s)")

    p50s: dict[str, float] = {}
    for name, count, label in (
        ("small", small, f"{small:,} images"),
        ("large", large, f"{large:,} images"),
        ("beside", 100, f"100 images, other tenant {large:,}"),
    ):
        print(f"seeding {count:,} images, then {LIST_REQUESTS} lists...", flush=True)
        seed(url, token(name), count, f"{run_id}-{name}")
        p50s[name], p99 = list_latency(Glance(url, token(name)), count)
        goal = "reported (Glance p50 ~20 ms at 1,000)" if name == "small" else "grows mildly"
        add(f"list limit=25 p50/p99: {label}", f"{p50s[name]:.1f} / {p99:.1f} ms", goal)
    ratio = p50s["large"] / p50s["small"]
    add(f"list p50 ratio {large:,} / {small:,}", f"{ratio:.2f}×", "grows mildly (≤ 2×)", ratio <= 2)


HEAD = ("measure", "Kiln", "goal", "result")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running Kiln (needs --state-dir for its signing key)")
    parser.add_argument("--state-dir", help="the running stack's state directory")
    parser.add_argument("--quick", action="store_true", help="200/2,000 images, a 64 MiB image")
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
    with stack(args.url, args.state_dir) as (url, key):
        try:
            run(url, key, args.quick, rows)
        except (KilnError, RuntimeError, requests.RequestException) as exc:
            error = exc
    print(f"\n{table(HEAD, rows)}\n(load average at the end: {os.getloadavg()[0]:.2f})")
    if error is not None:
        print(f"\nERROR: Kiln failed, the remaining measures were not taken:\n{error}")
        return 1
    missed = sum(row[3].startswith("FAIL") for row in rows)
    print(f"\n{missed} goal(s) missed." if missed else "\nAll goals met.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
