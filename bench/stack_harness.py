"""What the benchmarks share: a free port, and the stack they measure (a running one, or one
started for the run in a temporary directory and stopped after)."""

from __future__ import annotations

import contextlib
import json
import socket
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from infra.local.process import StackProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def stack(url: str | None, state_dir: str | None) -> Iterator[tuple[str, bytes]]:
    """(api_url, signing key): of the given stack, or of one started here (no build hosts)."""
    if state_dir:
        info = json.loads((Path(state_dir) / "stack.json").read_text())
        yield url or info["api_url"], (Path(state_dir) / "jwt-private.pem").read_bytes()
        return
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as tmp:
        ports = free_port(), free_port()
        print(f"starting a stack in {tmp} (api {ports[0]}, aws {ports[1]})...", flush=True)
        with StackProcess(Path(tmp), *ports, KILN_BUILD_HOSTS="none") as proc:
            yield proc.info["api_url"], (Path(tmp) / "jwt-private.pem").read_bytes()


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows under a head, in columns two spaces apart, a rule under the head."""
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [head, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)
