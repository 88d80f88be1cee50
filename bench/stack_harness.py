"""What the benchmarks share: a free port, and the stack they measure (a running one, or one
started for the run in a temporary directory and stopped after)."""

from __future__ import annotations

import contextlib
import json
import socket
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from infra.local import control
from infra.local.process import StackProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def stack(url: str | None, state_dir: str | None) -> Iterator[tuple[str, bytes]]:
    """(api_url, signing key): of the given stack, or of one started here (no build hosts)."""
    with stack_process(url, state_dir) as (api_url, key, _):
        yield api_url, key


@contextlib.contextmanager
def stack_process(
    url: str | None, state_dir: str | None
) -> Iterator[tuple[str, bytes, int | None]]:
    """(api_url, signing key, the stack's pid): of the given stack (its pid from its
    stack.pid, None if it has none), or of one started here, with its data in a data dir
    (the default: <its state dir>/data) and no build hosts."""
    if state_dir:
        info = json.loads((Path(state_dir) / "stack.json").read_text())
        key = (Path(state_dir) / "jwt-private.pem").read_bytes()
        yield url or info["api_url"], key, control.running_pid(Path(state_dir))
        return
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as tmp:
        ports = free_port(), free_port()
        print(f"starting a stack in {tmp} (api {ports[0]}, aws {ports[1]})...", flush=True)
        with StackProcess(Path(tmp), *ports, KILN_BUILD_HOSTS="none") as proc:
            assert proc.process is not None
            key = (Path(tmp) / "jwt-private.pem").read_bytes()
            yield proc.info["api_url"], key, proc.process.pid


def process_tree(pid: int, skip: bytes = b"builders.agent") -> list[int]:
    """``pid`` and every process below it, but build hosts (their builds are not the stack's
    memory)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            if skip in Path(f"/proc/{current}/cmdline").read_bytes():
                continue
        except OSError:
            continue
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def reset_peaks(pids: list[int]) -> None:
    """Start each process's peak resident size (VmHWM) again from its current size."""
    for pid in pids:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_mib(pids: list[int]) -> float:
    """The sum of the processes' peak resident sizes (VmHWM) since reset_peaks, in MiB."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])  # kB
    return total / 1024


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows under a head, in columns two spaces apart, a rule under the head."""
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [head, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)
