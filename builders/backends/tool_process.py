"""What the image-building backends (debian.py, kiwi.py) share to run their tools.

- ``wait_for_index``: poll a package repository's index until it answers, with backoff.
- ``run_tool``: run a build tool (mmdebstrap, mksquashfs, kiwi-ng) in its own process group,
  forwarding its output to the build log, and stop it (the whole group) when the host stops.
- ``sleep_unless_stopped``, ``unmount_below``: waiting and cleaning up around them.

What differs per tool (the signal that makes it clean up, how long that may take, how its
output splits into lines, what its errors look like) stays in the backend.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import platform
import queue
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, NamedTuple

from builders import workdir
from builders.backends.base import BuildContext, BuildError

STOPPED = "build stopped: host is shutting down"


# -- package repositories ---------------------------------------------------------------------
def wait_for_index(
    url: str,
    ctx: BuildContext,
    *,
    wait_seconds: float,
    not_found: str,
    check: Callable[[str], str | None],
    gave_up: Callable[[str], str],
) -> None:
    """Fetch a repository's index ``url`` until it answers (retrying for ``wait_seconds``).

    BuildError(``not_found``) on 404; BuildError("<problem> (<url>)") if ``check(index)``
    finds a problem with the index; BuildError(``gave_up(<last problem>)``) if it never answers.
    """
    deadline = time.monotonic() + wait_seconds
    delay = 2.0
    while True:
        index, problem = _fetch_index(url, not_found)
        if index is not None:
            mismatch = check(index)
            if mismatch:
                raise BuildError(f"{mismatch} ({url})")
            return
        if time.monotonic() + delay > deadline:
            raise BuildError(gave_up(problem))
        ctx.log(f"W: kiln: {url}: {problem}; retrying in {delay:.0f} s")
        sleep_unless_stopped(delay, ctx)
        delay = min(delay * 2, 15.0)


def _fetch_index(url: str, not_found: str) -> tuple[str | None, str]:
    """(the index's text, "") if it is there; else (None, a retryable problem). Raises on 404."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read(1 << 20).decode("utf-8", errors="replace"), ""
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise BuildError(not_found) from None
        return None, f"HTTP {exc.code} {exc.reason}"
    except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
        return None, str(getattr(exc, "reason", exc))


def sleep_unless_stopped(seconds: float, ctx: BuildContext) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ctx.should_stop():
            raise BuildError(STOPPED)
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


# -- running a tool ---------------------------------------------------------------------------
class ToolResult(NamedTuple):
    returncode: int
    tail: list[str]  # the last output lines, for the backend's error summary


def run_tool(
    command: Sequence[str],
    env: Mapping[str, str],
    ctx: BuildContext,
    *,
    stop_signal: signal.Signals,
    grace_seconds: float,
    stop_message: str,
    tail_lines: int,
    split: Callable[[str], Iterable[str]] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> ToolResult:
    """Run a tool in its own process group, logging each output line; BuildError(STOPPED) if
    stopped on request (then ``stop_signal`` goes to the group, SIGKILL after ``grace_seconds``).

    ``split`` turns one line of raw output into the lines to log; ``on_line`` sees each of them.
    """
    tail: deque[str] = deque(maxlen=tail_lines)
    lines: queue.Queue[str | None] = queue.Queue()
    stopped = False

    def forward(line: str) -> None:
        if on_line is not None:
            on_line(line)
        tail.append(line)
        ctx.log(line)

    with subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env),
        start_new_session=True,
    ) as process:
        assert process.stdout is not None
        pump = threading.Thread(
            target=_pump_lines, args=(process.stdout, lines, split), daemon=True
        )
        pump.start()
        while True:
            if not stopped and ctx.should_stop():
                stopped = True
                ctx.log(stop_message)
                args = (process.pid, stop_signal, grace_seconds)
                threading.Thread(target=_stop_group, args=args, daemon=True).start()
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                if _exited(process.pid):  # a leftover child may still hold the pipe open
                    break
                continue
            if line is None:
                break
            forward(line)
        _exited(process.pid, timeout=None)
        # The group leader is unreaped, so its group id cannot be reused yet: kill whatever a
        # hook left running in the group, then reap.
        _kill_group(process.pid, signal.SIGKILL)
        returncode = process.wait()
    while not lines.empty():  # what a leftover child wrote before it was killed
        if (line := lines.get()) is not None:
            forward(line)
    if stopped:
        raise BuildError(STOPPED)
    return ToolResult(returncode, list(tail))


def _pump_lines(
    stream: IO[bytes],
    lines: queue.Queue[str | None],
    split: Callable[[str], Iterable[str]] | None,
) -> None:
    for raw in stream:
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        for line in (text,) if split is None else split(text):
            lines.put(line)
    lines.put(None)


def _stop_group(pid: int, sig: signal.Signals, grace_seconds: float) -> None:
    """Signal the group (the tool then unmounts and cleans up), SIGKILL after a grace time."""
    _kill_group(pid, sig)
    if not _exited(pid, timeout=grace_seconds):
        _kill_group(pid, signal.SIGKILL)


def _exited(pid: int, timeout: float | None = 0) -> bool:
    """True once the process has exited, leaving it unreaped (waitid WNOWAIT)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:  # reaped already (run_tool, while _stop_group waited)
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def unmount_below(root: Path, ctx: BuildContext) -> None:
    """Unmount whatever an interrupted tool left mounted inside ``root`` (deepest first)."""
    for point in reversed(workdir.unmount_below(root)):
        ctx.log(f"W: kiln: unmounted leftover {point}")


def host_problem(
    tools: tuple[tuple[str, str], ...], path: str, root_for: str, arch: str, binfmt_dir: Path
) -> str | None:
    """Why this host cannot run a backend's tools for ``arch``: a (tool, Debian package)
    missing from ``path``, not root, or no binfmt_misc entry for a foreign arch."""
    for tool, package in tools:
        if shutil.which(tool, path=path) is None:
            return f"{tool} is not installed (apt-get install {package})"
    if os.geteuid() != 0:
        return f"{root_for} needs the build host agent to run as root"
    if arch != platform.machine() and not (binfmt_dir / f"qemu-{arch}").exists():
        return f"cannot run {arch} binaries: no binfmt_misc entry qemu-{arch} (qemu-user-static)"
    return None
