"""Kiln's OMPS face: pushes of a typical small operator zip (a package file, one CSV, one CRD,
a few KiB), as OSBS sends them (tests/omps/osbs_client.py: v2, no version, so each push takes
the package's next version).

Measures pushes per second and p50/p99 push latency, sequential and with 8 concurrent clients
pushing to one package (each push allocates its version atomically, so the concurrent ones
contend for the same next version). Prints one table; exits 1 when a push fails.
Run: .venv/bin/python bench/omps.py [--pushes N] [--url URL --state-dir DIR]
By default it starts its own stack (KILN_BUILD_HOSTS=none) in a temporary directory.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.stack_harness import stack, table  # noqa: E402
from infra.local.tokens import mint  # noqa: E402
from tests.omps.operators import flat_operator  # noqa: E402
from tests.omps.osbs_client import OMPS, OMPSError  # noqa: E402

CONCURRENCY = 8
Row = tuple[str, str, str, str, str]


def timed_push(client: OMPS, organization: str, archive: bytes) -> tuple[float, str]:
    started = time.perf_counter()
    body = client.push_archive(organization, archive)
    return time.perf_counter() - started, str(body["version"])


def series(url: str, token: str, pushes: int, workers: int, archive: bytes) -> Row:
    organization = f"bench-{uuid.uuid4().hex[:8]}"
    clients = [OMPS(f"{url}/omps", token, backoff=0, retries=0) for _ in range(workers)]
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(
            pool.map(
                lambda i: timed_push(clients[i % workers], organization, archive), range(pushes)
            )
        )
    elapsed = time.perf_counter() - started
    times = sorted(seconds for seconds, _version in results)
    versions = {version for _seconds, version in results}
    if len(versions) != pushes:
        raise OMPSError(f"{pushes} pushes got {len(versions)} distinct versions")
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    return (
        "sequential" if workers == 1 else f"{workers} concurrent, one package",
        str(pushes),
        f"{pushes / elapsed:.1f}/s",
        f"{statistics.median(times) * 1000:.0f} ms",
        f"{p99 * 1000:.0f} ms",
    )


HEAD = ("pushes", "N", "pushes/s", "p50", "p99")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running Kiln (needs --state-dir for its signing key)")
    parser.add_argument("--state-dir", help="the running stack's state directory")
    parser.add_argument("--pushes", type=int, default=80, help="pushes per series (80)")
    args = parser.parse_args()
    if args.url and not args.state_dir:
        parser.error("--url needs --state-dir (the signing key mints the tenant's token)")
    archive = flat_operator("bench-operator")
    print(
        f"Kiln OMPS bench, {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}\n"
        f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, "
        f"Python {platform.python_version()}; operator zip {len(archive)} bytes",
        flush=True,
    )
    rows: list[Row] = []
    with stack(args.url, args.state_dir) as (url, key):
        token = "Bearer " + mint(key, f"bench-{uuid.uuid4().hex[:6]}", "user")
        try:
            for workers in (1, CONCURRENCY):
                print(f"{args.pushes} pushes, {workers} client(s)...", flush=True)
                rows.append(series(url, token, args.pushes, workers, archive))
        except OMPSError as exc:
            print(f"\n{table(HEAD, rows)}\n\nERROR: a push failed: {exc}")
            return 1
    print(f"\n{table(HEAD, rows)}\n(load average at the end: {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
