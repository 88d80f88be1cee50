"""Runs the stack `make up` runs (python -m infra.local.stack) as a child process, for the
end-to-end tests and the benchmarks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]


class StackProcess:
    """``data_dir``: where the stack keeps its data (default ``<state_dir>/data``; never the
    caller's own KILN_DATA_DIR); ``None``: in memory only. ``own_group``: the stack (with its
    build hosts) in a process group of its own, which ``kill_hard`` kills."""

    def __init__(
        self,
        state_dir: Path,
        api_port: int,
        aws_port: int,
        data_dir: Path | None | str = "default",
        own_group: bool = False,
        **env: str,
    ) -> None:
        self.state_dir = state_dir
        self.own_group = own_group
        self.data_dir = state_dir / "data" if data_dir == "default" else data_dir
        self.env = {
            **os.environ,
            "KILN_API_PORT": str(api_port),
            "KILN_AWS_PORT": str(aws_port),
            "KILN_STATE_DIR": str(state_dir),
            "KILN_DATA_DIR": str(self.data_dir) if self.data_dir is not None else "none",
            "KILN_TOKEN_PORT": "0",  # the token endpoint on any free port (stack.json: token_url)
            **env,
        }
        for name in ("AWS_ENDPOINT_URL", "MOTO_PORT"):
            self.env.pop(name, None)
        self.process: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self.go_proxy: Path | None = None  # the file:// Go module proxy a test stack uses

    def __enter__(self) -> StackProcess:
        stack_file = self.state_dir / "stack.json"
        stack_file.unlink(missing_ok=True)  # a killed stack's, stale: wait for the new one's
        self.log = (self.state_dir / "stack.log").open("ab")  # a restart's output follows
        self.process = subprocess.Popen(
            [sys.executable, "-m", "infra.local.stack"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=self.own_group,
        )
        deadline = time.time() + 120
        while not stack_file.exists():
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError("the stack did not come up:\n" + self.output())
            time.sleep(0.2)
        self.info = json.loads(stack_file.read_text())
        return self

    def host_process(self, xname: str) -> dict[str, Any]:
        """A build host's ``pid``, ``restarts`` and ``started`` as stack.json has them now (the
        stack rewrites the file when its supervisor restarts a host)."""
        info = json.loads((self.state_dir / "stack.json").read_text())
        return dict(info["build_host_processes"][xname])

    def moto_pid(self) -> int | None:
        """The stack's moto process (in a session of its own), or None."""
        assert self.process is not None
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                command = (stat.parent / "cmdline").read_bytes()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.process.pid and b"infra.local.moto_process" in command:
                return int(stat.parent.name)
        return None

    def kill_hard(self) -> None:
        """``kill -9`` of the whole stack at once: its process group (the stack and its build
        hosts) and its moto. Nothing gets to stop cleanly."""
        assert self.process is not None and self.own_group, "kill_hard needs own_group=True"
        moto = self.moto_pid()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if moto is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(moto, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()
        deadline = time.time() + 30  # until moto is gone (its port free for a restart)
        while moto is not None and time.time() < deadline:
            try:
                state = Path(f"/proc/{moto}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                return
            if state == "Z":
                return
            time.sleep(0.05)

    def output(self) -> str:
        return (self.state_dir / "stack.log").read_text(errors="replace")[-6000:]

    def __exit__(self, *_: object) -> None:
        assert self.process is not None
        if self.process.poll() is not None:  # killed (kill_hard) or ended
            self.log.close()
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()

    def ims(
        self, method: str, path: str, role: str = "user", token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.info['tokens'][role]}"}
        return requests.request(
            method, f"{self.info['ims_url']}{path}", headers=headers, timeout=30, **kwargs
        )

    def composer(
        self, method: str, path: str, role: str = "user", **kwargs: Any
    ) -> requests.Response:
        """A call to the osbuild-composer cloud API face."""
        headers = {"Authorization": f"Bearer {self.info['tokens'][role]}"}
        return requests.request(
            method, f"{self.info['composer_url']}{path}", headers=headers, timeout=30, **kwargs
        )
