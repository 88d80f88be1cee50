"""Per-request latency of the local HTTP fronts: `chalice local`'s server against Kiln's own
(infra/local/front.py), serving the same tiny Chalice app.

For each front: N sequential GETs, then N sequential POSTs (small JSON bodies), each series on
one keep-alive requests.Session. Prints p50/p99 per request and requests/s.
Run: .venv/bin/python bench/front.py [--requests 200]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests
from chalice import Chalice
from chalice.config import Config
from chalice.local import ChaliceRequestHandler, create_local_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from infra.local.front import create_front  # noqa: E402


def make_app() -> Chalice:
    app = Chalice(app_name="front-bench")

    @app.route("/items/{name}", methods=["GET"])
    def item(name: str) -> dict[str, Any]:
        return {"name": name, "tags": ["a", "b", "c"]}

    @app.route("/items", methods=["POST"])
    def create() -> dict[str, Any]:
        body = app.current_request.json_body or {}
        return {"created": body.get("name"), "size": len(app.current_request.raw_body)}

    return app


@contextlib.contextmanager
def chalice_local() -> Iterator[str]:
    ChaliceRequestHandler.log_message = lambda *_args: None  # type: ignore[method-assign]
    server = create_local_server(make_app(), Config.create(), "127.0.0.1", 0).server
    with serving(server.serve_forever, server.shutdown):
        yield f"http://127.0.0.1:{server.server_address[1]}"
    server.server_close()


@contextlib.contextmanager
def kiln_front() -> Iterator[str]:
    front = create_front(make_app(), Config.create(), "127.0.0.1", 0)
    with serving(front.serve_forever, front.shutdown):
        yield f"http://127.0.0.1:{front.server_address[1]}"


@contextlib.contextmanager
def serving(serve: Callable[[], None], stop: Callable[[], None]) -> Iterator[None]:
    thread = threading.Thread(target=serve, daemon=True)
    with contextlib.redirect_stdout(io.StringIO()):  # chalice local prints "Serving on ..."
        thread.start()
        time.sleep(0.05)
    try:
        yield
    finally:
        stop()
        thread.join(timeout=10)


def series(url: str, method: str, count: int) -> list[float]:
    """Seconds per request, one keep-alive session, after a warm-up request."""
    times: list[float] = []
    with requests.Session() as session:
        for i in range(count + 1):
            start = time.perf_counter()
            if method == "GET":
                response = session.get(f"{url}/items/n{i}", timeout=10)
            else:
                response = session.post(f"{url}/items", json={"name": f"n{i}"}, timeout=10)
            response.raise_for_status()
            response.json()
            if i:
                times.append(time.perf_counter() - start)
    return times


def row(front: str, method: str, times: list[float]) -> str:
    p50 = statistics.median(times) * 1000
    p99 = statistics.quantiles(times, n=100)[98] * 1000 if len(times) > 1 else p50
    rate = len(times) / sum(times)
    return f"{front:<14} {method:<5} {len(times):>6} {p50:>9.2f} {p99:>9.2f} {rate:>10.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="per method and front")
    count = parser.parse_args().requests
    fronts = {"chalice local": chalice_local, "kiln front": kiln_front}
    header = f"{'front':<14} {'verb':<5} {'n':>6} {'p50 ms':>9} {'p99 ms':>9} {'req/s':>10}"
    print(header)
    print("-" * len(header))
    for name, start in fronts.items():
        with start() as url:
            for method in ("GET", "POST"):
                print(row(name, method, series(url, method, count)), flush=True)


if __name__ == "__main__":
    main()
