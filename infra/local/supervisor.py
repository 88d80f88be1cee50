"""Keeps a local build host running, as an Auto Scaling group keeps an instance: a host process
that exits while the stack is up (a crash, a SIGKILL) is started again, with the same settings
(so the same xname, still registered) after a short delay that doubles while it keeps dying
soon after each start. Stopping the stack stops it for good: no restart once stopping is set.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("kiln.local")

Starter = Callable[[], "subprocess.Popen[bytes]"]


def exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def agent_pid(process: subprocess.Popen[bytes], marker: str = "builders.agent") -> int:
    """The pid of the host program itself: ``process`` when it is the program, else (started
    through sudo) the first descendant whose command line holds ``marker``."""
    pending, seen = [process.pid], 0
    while pending and seen < 16:
        pid = pending.pop(0)
        seen += 1
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        if marker in cmdline and not cmdline.startswith("sudo"):
            return pid
        pending.extend(int(child) for child in children)
    return process.pid


class Supervisor:
    """One supervised process. ``start()`` launches it and a watcher thread; the watcher
    restarts it when it exits unless ``stopping`` is set. ``on_start`` is called (from the
    watcher thread) after every restart, e.g. to publish the new pid."""

    def __init__(
        self,
        name: str,
        launch: Starter,
        stopping: threading.Event,
        on_start: Callable[[Supervisor], None] | None = None,
        *,
        first_delay: float = 0.5,
        max_delay: float = 30.0,
        stable_seconds: float = 10.0,
    ) -> None:
        self.name = name
        self._launch = launch
        self._stopping = stopping
        self._on_start = on_start
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.stable_seconds = stable_seconds  # an exit sooner after a start counts as quick
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._pid = 0
        self.started_at = 0.0  # epoch seconds of the latest start
        self.restarts = 0
        self.exits = 0  # exits nobody asked for
        self._fast_deaths = 0  # exits in a row, each within stable_seconds of its start
        self._watcher: threading.Thread | None = None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._process

    @property
    def pid(self) -> int:
        """The host program's pid: sudo's child, when started through sudo (found once it is
        there)."""
        process = self._process
        if process is not None and self._pid in (0, process.pid):
            self._pid = agent_pid(process)
        return self._pid

    def delay(self) -> float:
        """Wait before the next restart: first_delay, doubled for each fast death in a row."""
        return min(self.max_delay, self.first_delay * 2 ** max(0, self._fast_deaths - 1))

    def start(self) -> None:
        with self._lock:
            self._spawn()
        self._watcher = threading.Thread(target=self._watch, name=f"supervise-{self.name}")
        self._watcher.daemon = True
        self._watcher.start()

    def _spawn(self) -> None:
        process = self._launch()
        self._process, self.started_at, self._pid = process, time.time(), 0

    def _watch(self) -> None:
        while True:
            process = self._process
            assert process is not None
            code = process.wait()
            if self._stopping.is_set():
                return
            lived = time.time() - self.started_at
            self.exits += 1
            self._fast_deaths = self._fast_deaths + 1 if lived < self.stable_seconds else 1
            log.warning(
                "build host %s (pid %s) exited: %s after %.1f s; restarting it in %.1f s "
                "(restart %d%s)",
                self.name,
                self.pid,
                exit_text(code),
                lived,
                self.delay(),
                self.restarts + 1,
                f", {self._fast_deaths} quick exits in a row" if self._fast_deaths > 1 else "",
            )
            if not self._restart():
                return
            log.warning(
                "build host %s restarted: pid %s (restart %d)", self.name, self.pid, self.restarts
            )
            if self._on_start is not None:
                try:
                    self._on_start(self)
                except Exception:
                    log.exception("after restarting build host %s", self.name)

    def _restart(self) -> bool:
        """Start the process again after ``delay()``; False if stopping came first."""
        while not self._stopping.wait(self.delay()):
            with self._lock:
                if self._stopping.is_set():
                    return False
                try:
                    self._spawn()
                except OSError:
                    log.exception("could not restart build host %s; trying again", self.name)
                    self._fast_deaths += 1
                    continue
                self.restarts += 1
                return True
        return False

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM); ``stopping`` must be set first, so it stays down."""
        assert self._stopping.is_set(), "set the stopping event before terminating"
        with self._lock:  # a restart under way finishes first; none starts after this
            process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        """Wait for the process to end; SIGKILL it after ``timeout`` seconds."""
        process = self._process
        if process is None:
            return
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("build host %s did not stop in %.0f s: killing it", self.name, timeout)
            process.kill()
            process.wait()
        if self._watcher is not None:
            self._watcher.join(timeout=5)

    def info(self) -> dict[str, float | int]:
        return {"pid": self.pid, "restarts": self.restarts, "started": round(self.started_at, 3)}
