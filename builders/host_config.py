"""A build host's settings, from its environment (set by infra/local or the AWS host image)."""

from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path

from builders.ssh_session import STATE_ROOT, SshSettings


def native_arch() -> str:
    machine = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def port_range(text: str) -> tuple[int, int]:
    """'2200-2299' (or one port, '2200') as (first, last)."""
    first, _, last = text.strip().partition("-")
    low, high = int(first), int(last or first)
    if not 0 < low <= high < 65536:
        raise ValueError(f"not a port range: {text!r} (expected e.g. 2200-2299)")
    return low, high


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
    bucket: str = "kiln-artifacts"  # the artifact bucket: control objects live there
    ssh_host: str = "127.0.0.1"  # where job SSH servers listen, and the address users are given
    ssh_ports: tuple[int, int] = (2200, 2299)
    endpoint_url: str | None = None  # AWS_ENDPOINT_URL (moto locally) for every AWS client
    log_chunk_seconds: float = 2.0  # how often new log lines go up as a chunk
    # a Cachito request's step that runs this long is reported again ("still running"), so
    # the request's ``updated`` moves: atomic-reactor gives up an hour after its last change
    cachito_progress_seconds: float = 600.0
    koji_hubs: str = ""  # KILN_KOJI_HUBS: the Koji hubs it imports into, and their logins

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
            bucket=env.get("KILN_ARTIFACT_BUCKET", "kiln-artifacts"),
            ssh_host=env.get("KILN_SSH_HOST", "127.0.0.1"),
            ssh_ports=port_range(env.get("KILN_SSH_PORTS", "2200-2299")),
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            log_chunk_seconds=float(env.get("KILN_LOG_CHUNK_SECONDS", "2")),
            cachito_progress_seconds=float(env.get("KILN_CACHITO_PROGRESS_SECONDS", "600")),
            koji_hubs=env.get("KILN_KOJI_HUBS", ""),
        )

    @property
    def task_heartbeat_interval(self) -> float:
        """Beat well inside the state machine's HeartbeatSeconds."""
        return max(0.5, self.heartbeat_seconds / 4)

    @property
    def ssh(self) -> SshSettings:
        """Where job SSH servers listen; their state in /run/kiln-ssh/<xname>/<job_id>."""
        return SshSettings(self.ssh_host, self.ssh_ports, STATE_ROOT / self.xname)
