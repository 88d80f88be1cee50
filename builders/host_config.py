"""A build host's settings, from its environment (set by infra/local or the AWS host image)."""

from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path


def native_arch() -> str:
    machine = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


@dataclasses.dataclass(frozen=True)
class HostConfig:
    arch: str
    xname: str
    build_queue_url: str
    events_queue_url: str
    work_dir: Path
    heartbeat_seconds: int
    region: str
    poll_wait_seconds: int = 2
    node_heartbeat_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> HostConfig:
        env = os.environ
        arch = env.get("KILN_HOST_ARCH", native_arch())
        return cls(
            arch=arch,
            xname=env.get("KILN_HOST_XNAME", f"{platform.node()}-{arch}"),
            build_queue_url=env["KILN_BUILD_QUEUE_URL"],
            events_queue_url=env["KILN_BUILD_EVENTS_QUEUE_URL"],
            work_dir=Path(env.get("KILN_HOST_WORK_DIR", "/var/lib/kiln-host")),
            heartbeat_seconds=int(env.get("KILN_HEARTBEAT_SECONDS", "60")),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION", "us-east-1"),
        )

    @property
    def task_heartbeat_interval(self) -> float:
        """Beat well inside the state machine's HeartbeatSeconds."""
        return max(0.5, self.heartbeat_seconds / 4)
