"""Runs the stack `make up` runs (python -m infra.local.stack) as a child process, for the
end-to-end tests and the benchmarks."""

from __future__ import annotations

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
    def __init__(self, state_dir: Path, api_port: int, aws_port: int, **env: str) -> None:
        self.state_dir = state_dir
        self.env = {
            **os.environ,
            "KILN_API_PORT": str(api_port),
            "KILN_AWS_PORT": str(aws_port),
            "KILN_STATE_DIR": str(state_dir),
            "KILN_TOKEN_PORT": "0",  # the token endpoint on any free port (stack.json: token_url)
            **env,
        }
        for name in ("AWS_ENDPOINT_URL", "MOTO_PORT"):
            self.env.pop(name, None)
        self.process: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self.go_proxy: Path | None = None  # the file:// Go module proxy a test stack uses

    def __enter__(self) -> StackProcess:
        self.log = (self.state_dir / "stack.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "infra.local.stack"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        stack_file = self.state_dir / "stack.json"
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

    def output(self) -> str:
        return (self.state_dir / "stack.log").read_text(errors="replace")[-6000:]

    def __exit__(self, *_: object) -> None:
        assert self.process is not None
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
