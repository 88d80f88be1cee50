"""AWS Batch on `make up`: for each arch in ``KILN_BATCH_ARCHES`` (comma-separated; default
none) the stack starts the Batch feeder (``python -m builders.batch_feeder``, supervised like a
host) and this runner instead of a polling build host (docs/batch.md).

moto's Batch API is used for real: the compute environment, job queue and job definition are
created in it, the feeder's SubmitJob, ListJobs, DescribeJobs and TerminateJob go to it. moto
5.2.5 runs a submitted job in docker unless its config says ``{"batch": {"use_docker":
false}}`` (moto/batch/responses.py picks moto/batch_simple then); set here, a job is marked
SUCCEEDED the moment it is submitted (moto/batch_simple/models.py), so moto's status says
nothing about running. The runner stands for the compute environment: it lists the job queue's
jobs (every status), and runs each new one once, not FAILED ones (a job the feeder terminated is
SUCCEEDED already in moto: its container finds the token closed and builds nothing), as
``python -m builders.agent --one-shot`` with the job's environment from DescribeJobs (its
``KILN_JOB_MESSAGE``, ``AWS_BATCH_JOB_ID``) over the local hosts' environment, at most
``KILN_BATCH_SLOTS`` (default 2) at a time. The feeder's node ``batch-<arch>`` is registered
through the IMS API, as the stack registers its hosts.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import requests

from chalicelib.adapters import aws_clients
from chalicelib.config import ARCHES
from infra import resources
from infra.local import tokens
from infra.local.supervisor import Supervisor

ROOT = Path(__file__).resolve().parents[2]
ENV = "KILN_BATCH_ARCHES"
log = logging.getLogger("kiln.local")


def arches_from_env(env: Any = os.environ) -> tuple[str, ...]:
    """The arches whose builds run on (local) Batch; ValueError for one Kiln does not build."""
    text = env.get(ENV, "")
    arches = tuple(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    unknown = [a for a in arches if a not in ARCHES]
    if unknown:
        raise ValueError(
            f"{ENV}={text!r}: unknown arch {', '.join(unknown)} (known: {', '.join(ARCHES)})"
        )
    return arches


def without_batch(arches: Iterable[str]) -> tuple[str, ...]:
    """``arches`` less the Batch ones (no polling host for them); a bad value is reported by
    the stack's start-up checks (``arches_from_env``)."""
    try:
        batch = arches_from_env()
    except ValueError:
        batch = ()
    return tuple(a for a in arches if a not in batch)


@dataclasses.dataclass(frozen=True)
class BatchNames:
    arch: str

    @property
    def compute_environment(self) -> str:
        return f"kiln-local-{self.arch}"

    @property
    def job_queue(self) -> str:
        return f"kiln-builds-{self.arch}"

    @property
    def job_definition(self) -> str:
        return f"kiln-agent-{self.arch}"

    @property
    def node(self) -> str:
        return f"batch-{self.arch}"


def provision(region: str, arch: str) -> BatchNames:
    """The arch's compute environment, job queue and job definition in moto (again: no-op)."""
    names = BatchNames(arch)
    batch, iam = (aws_clients.client(name, region) for name in ("batch", "iam"))
    try:
        role = iam.get_role(RoleName="kiln-batch-service")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName="kiln-batch-service", AssumeRolePolicyDocument="{}")
        role = role["Role"]["Arn"]
    found = batch.describe_compute_environments(computeEnvironments=[names.compute_environment])
    if found["computeEnvironments"]:
        environment = found["computeEnvironments"][0]["computeEnvironmentArn"]
    else:
        environment = batch.create_compute_environment(
            computeEnvironmentName=names.compute_environment,
            type="UNMANAGED",
            state="ENABLED",
            serviceRole=role,
        )["computeEnvironmentArn"]
    if not batch.describe_job_queues(jobQueues=[names.job_queue])["jobQueues"]:
        batch.create_job_queue(
            jobQueueName=names.job_queue,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
        )
    batch.register_job_definition(
        jobDefinitionName=names.job_definition,
        type="container",
        containerProperties={
            "image": "kiln-build-agent:local",  # not pulled: the runner runs the agent here
            "command": ["python", "-m", "builders.agent", "--one-shot"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "2048"},
            ],
            "environment": [{"name": "KILN_HOST_ARCH", "value": arch}],
        },
    )
    return names


def agent_command() -> list[str]:
    """As the stack starts a host: as root (mmdebstrap), through sudo when we are not."""
    command = [sys.executable, "-m", "builders.agent", "--one-shot"]
    if os.geteuid() != 0 and shutil.which("sudo"):
        return ["sudo", "--preserve-env", *command]
    return command


def _feeder(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "builders.batch_feeder"], cwd=ROOT, env=env)


class Runner:
    """The compute environment: each new Batch job of the queue runs once, as a one-shot
    agent, at most ``slots`` at a time."""

    def __init__(self, names: BatchNames, env: dict[str, str], slots: int, region: str) -> None:
        self.names, self.env, self.slots = names, env, slots
        self._batch = aws_clients.client("batch", region)
        self._seen: set[str] = set()
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.ran: list[str] = []  # Batch job ids, in the order they were started

    def poll(self) -> None:
        for job_id, process in list(self.running.items()):
            code = process.poll()
            if code is not None:
                del self.running[job_id]
                log.info("batch job %s: one-shot agent exited %s", job_id, code)
        if len(self.running) >= self.slots:
            return
        listed = self._batch.list_jobs(
            jobQueue=self.names.job_queue, filters=[{"name": "JOB_NAME", "values": ["kiln-*"]}]
        )["jobSummaryList"]
        new = sorted(
            (job for job in listed if job["jobId"] not in self._seen),
            key=lambda job: job.get("createdAt", 0),
        )
        for summary in new[: self.slots - len(self.running)]:
            self._seen.add(summary["jobId"])
            if summary.get("status") == "FAILED":  # terminated or failed before it ran
                continue
            (job,) = self._batch.describe_jobs(jobs=[summary["jobId"]])["jobs"]
            job_env = {
                item["name"]: item["value"]
                for item in reversed(job.get("container", {}).get("environment", []))
            }
            log.info("batch job %s (%s): running it", job["jobId"], job["jobName"])
            self.running[job["jobId"]] = subprocess.Popen(
                agent_command(), cwd=ROOT, env={**self.env, **job_env}
            )
            self.ran.append(job["jobId"])

    def loop(self, stop: threading.Event, every: float = 0.5) -> None:
        while not stop.wait(every):
            try:
                self.poll()
            except Exception:
                log.exception("local Batch runner: pass failed")

    def stop(self, timeout: float = 30) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.time() + timeout
        for process in self.running.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                process.kill()


class LocalBatch:
    """Every Batch arch of the stack: its feeder process and its runner thread."""

    def __init__(self, stack: Any, arches: tuple[str, ...]) -> None:
        self.stack, self.arches = stack, arches
        self.feeders: list[Supervisor] = []
        self.runners: list[Runner] = []
        self._threads: list[threading.Thread] = []

    def host_env(self, arch: str, names: BatchNames) -> dict[str, str]:
        """What a local host of ``arch`` gets (stack.py's _start_host), and the feeder's
        settings."""
        opts, provisioned = self.stack.options, self.stack.provisioned
        return {
            **os.environ,
            "KILN_HOST_ARCH": arch,
            "KILN_BUILD_QUEUE_URL": provisioned.queue_urls[resources.build_queue_name(arch)],
            "KILN_BUILD_EVENTS_QUEUE_URL": provisioned.queue_urls[resources.BUILD_EVENTS_QUEUE],
            "KILN_HOST_WORK_DIR": str(opts.state_dir / "hosts" / names.node),
            "KILN_HEARTBEAT_SECONDS": str(opts.heartbeat_seconds),
            "KILN_BATCH_JOB_QUEUE": names.job_queue,
            "KILN_BATCH_JOB_DEFINITION": names.job_definition,
            "KILN_BATCH_SLOTS": os.environ.get("KILN_BATCH_SLOTS", "2"),
        }

    def start(self, region: str) -> None:
        requests.post(
            f"http://127.0.0.1:{self.stack.options.aws_port}/moto-api/config",
            json={"batch": {"use_docker": False}},
            timeout=10,
        ).raise_for_status()
        for arch in self.arches:
            names = provision(region, arch)
            env = self.host_env(arch, names)
            self._register(names.node)
            feeder = Supervisor(
                f"{names.node}-feeder", functools.partial(_feeder, env), self.stack.stop_event
            )
            feeder.start()
            self.feeders.append(feeder)
            runner = Runner(names, env, int(env["KILN_BATCH_SLOTS"]), region)
            thread = threading.Thread(
                target=runner.loop, args=(self.stack.stop_event,), name=f"{names.node}-runner"
            )
            thread.daemon = True
            thread.start()
            self.runners.append(runner)
            self._threads.append(thread)
        self._wait_for_nodes()

    def _register(self, xname: str) -> None:
        private_pem = tokens.ensure_keys(self.stack.options.state_dir)[0].read_bytes()
        admin = tokens.mint(private_pem, "demo", "admin")
        response = requests.post(
            f"{self.stack.api_url}/apis/ims/v3/remote-build-nodes",
            json={"xname": xname},
            headers={"Authorization": f"Bearer {admin}"},
            timeout=10,
        )
        if response.status_code not in (201, 409):
            raise RuntimeError(f"could not register {xname}: {response.text}")

    def _wait_for_nodes(self, timeout: float = 60) -> None:
        from chalicelib.domain.builds import nodes as build_nodes

        wanted = {BatchNames(arch).node for arch in self.arches}
        deadline = time.time() + timeout
        while time.time() < deadline:
            seen = {node.xname for node in build_nodes.registered() if node.last_heartbeat}
            if wanted <= seen:
                log.info("Batch feeders up: %s", ", ".join(sorted(wanted)))
                return
            time.sleep(0.3)
        log.warning("Batch feeder nodes silent after %ss: %s", timeout, sorted(wanted))

    def stop(self) -> None:
        """After the stack's stop_event is set: the feeders, then the running jobs."""
        for feeder in self.feeders:
            feeder.terminate()
        for feeder in self.feeders:
            feeder.wait(timeout=30)
        for thread in self._threads:
            thread.join(timeout=5)
        for runner in self.runners:
            runner.stop()


def start(stack: Any, region: str = "us-east-1") -> LocalBatch | None:
    """The stack's hook: Batch for each arch in KILN_BATCH_ARCHES (None: there is none)."""
    arches = arches_from_env()
    if not arches:
        return None
    local = LocalBatch(stack, arches)
    local.start(region)
    return local


def stop(local: LocalBatch | None) -> None:
    if local is not None:
        local.stop()
