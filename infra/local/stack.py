"""`make up`: the whole of Kiln on this machine, with moto server standing in for AWS.

Starts moto (Step Functions execution on), creates every resource from infra/resources.py,
serves the Chalice app over HTTP, drives the SQS and schedule handlers, starts a build host for
this machine's architecture and one for each other architecture it can emulate (qemu-user-static
through binfmt_misc: see emulation.py) under a Supervisor (supervisor.py: a host that dies is
started again, as an Auto Scaling group replaces an instance), writes .kiln/stack.json (with
each host's pid, rewritten on a restart) and .kiln/stack.pid, and stops it all on Ctrl-C or
SIGTERM (`make down`).
Its data (every table, object and queue message) is kept in the data dir, KILN_DATA_DIR
(default .kiln/data; control.py), and comes back on the next start; builds that were running
are re-dispatched from their records (chalicelib/domain/builds/recovery.py).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import requests

from chalicelib.adapters import aws_clients, koji_cg
from chalicelib.config import Settings, enabled_faces
from chalicelib.domain.builds import recovery
from chalicelib.domain.omps import organizations
from infra import resources
from infra.local import batch_runner, control, emulation, event_sources, token_server, tokens
from infra.local.provision import Provisioned, provision
from infra.local.supervisor import Supervisor

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
log = logging.getLogger("kiln.local")


@dataclasses.dataclass(frozen=True)
class StackOptions:
    api_port: int
    aws_port: int
    state_dir: Path
    heartbeat_seconds: int
    job_timeout_seconds: int
    schedule_seconds: float
    host_arches: tuple[str, ...]
    bucket: str = "kiln-artifacts"
    table_prefix: str = "kiln"
    hosts_not_started: tuple[str, ...] = ()  # why an arch has no build host, for the banner
    token_port: int = 8001  # the OAuth2 token endpoint (token_server.py): the API port + 1
    data_dir: Path | None = None  # where moto keeps its state (control.py); None: in memory

    @classmethod
    def from_env(cls) -> StackOptions:
        env = os.environ
        hosts = env.get("KILN_BUILD_HOSTS", "native")
        not_started: tuple[str, ...] = ()
        if hosts == "native":
            arches, not_started = default_host_arches()
        else:
            arches = tuple(a for a in hosts.split(",") if a)
        state_dir = control.state_dir_from_env()
        return cls(
            api_port=int(env.get("KILN_API_PORT", "8000")),
            aws_port=int(env.get("KILN_AWS_PORT", "5500")),
            state_dir=state_dir,
            data_dir=control.data_dir_from_env(state_dir),
            heartbeat_seconds=int(env.get("KILN_HEARTBEAT_SECONDS", "30")),
            job_timeout_seconds=int(env.get("KILN_JOB_TIMEOUT_SECONDS", "3600")),
            schedule_seconds=float(env.get("KILN_SCHEDULE_SECONDS", "30")),
            host_arches=batch_runner.without_batch(a for a in arches if a != "none"),
            hosts_not_started=not_started,
            token_port=int(env.get("KILN_TOKEN_PORT", int(env.get("KILN_API_PORT", "8000")) + 1)),
        )


def default_host_arches() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """This machine's arch and each other arch it can emulate; and why the others have no host."""
    arches, not_started = [native_arch()], []
    for arch in emulation.foreign_arches():
        reason = emulation.ensure_emulation(arch)
        if reason is None:
            arches.append(arch)
        else:
            log.info("not starting a build host for %s: %s", arch, reason)
            not_started.append(f"no {arch} host: {reason}")
    return tuple(arches), tuple(not_started)


def native_arch() -> str:
    machine = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def aws_environment(aws_port: int) -> dict[str, str]:
    endpoint = f"http://127.0.0.1:{aws_port}"
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "MOTO_PORT": str(aws_port),
        "AWS_ACCESS_KEY_ID": "kiln-local",
        "AWS_SECRET_ACCESS_KEY": "kiln-local",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


def host_command() -> list[str]:
    """The build host runs as root (mmdebstrap's root mode); through sudo when we are not."""
    command = [sys.executable, "-m", "builders.agent"]
    if os.geteuid() != 0 and shutil.which("sudo"):
        log.info("starting the build host through sudo: building images needs root")
        return ["sudo", "--preserve-env", *command]
    return command


class LocalStack:
    def __init__(self, options: StackOptions, data_lock: IO[bytes] | None = None) -> None:
        self.options = options
        self.stop_event = threading.Event()
        self._moto: Any = None
        self._api: Any = None
        self._tokens: token_server.TokenServer | None = None
        self._oauth: dict[str, Any] = {}  # stack.json's token_url and service_account
        self._hosts: list[Supervisor] = []
        self._batch: batch_runner.LocalBatch | None = None  # KILN_BATCH_ARCHES: batch_runner.py
        self._data_lock = data_lock  # the data dir's lock, held while the stack runs (control.py)
        self._stack: dict[str, Any] | None = None  # what stack.json says, once written
        self._stack_lock = threading.Lock()
        self.provisioned: Provisioned | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.options.api_port}"

    def start(self) -> dict[str, Any]:
        opts = self.options
        if opts.data_dir is not None and self._data_lock is None:
            self._data_lock = control.lock_data_dir(opts.data_dir)
        control.write_pid(opts.state_dir)
        (opts.state_dir / "stack.json").unlink(missing_ok=True)  # a killed stack's: stale
        os.environ.update(aws_environment(opts.aws_port))
        self._moto = control.start_moto(opts.aws_port, opts.state_dir, opts.data_dir)
        requests.post(
            f"http://127.0.0.1:{opts.aws_port}/moto-api/config",
            json={"stepfunctions": {"execute_state_machine": True}},
            timeout=10,
        ).raise_for_status()
        timing = resources.Timing(opts.heartbeat_seconds, opts.job_timeout_seconds)
        self.provisioned = provision(REGION, opts.table_prefix, opts.bucket, timing)
        private_key, public_key = tokens.ensure_keys(opts.state_dir)
        os.environ.update(self._app_environment(public_key))
        app_module = importlib.import_module("app")
        self._recover()
        self._serve_api(app_module)
        self._tokens, self._oauth = token_server.serve_for_stack(opts.state_dir, opts.token_port)
        event_sources.start(
            app_module, self.provisioned.queue_urls, REGION, opts.schedule_seconds, self.stop_event
        )
        self._register_hosts(private_key.read_bytes())
        for arch in opts.host_arches:
            host = Supervisor(
                f"local-{arch}",
                functools.partial(self._start_host, arch),
                self.stop_event,
                on_start=lambda _: self._update_stack_file(),
            )
            self._hosts.append(host)
            host.start()
        self._batch = batch_runner.start(self, REGION)  # feeder + runner per KILN_BATCH_ARCHES
        self._wait_for_hosts()
        return self._write_stack_file(private_key.read_bytes())

    def _recover(self) -> None:
        """Builds the last run left unfinished: their executions died with moto's Step
        Functions, so they are started again from their records (before any host runs)."""
        from chalicelib.container import container

        for line in recovery.after_restart(container(), aws_clients.client("sqs", REGION)):
            log.info("after the restart: %s", line)

    def _app_environment(self, public_key: Path) -> dict[str, str]:
        assert self.provisioned is not None
        return {
            "KILN_STATE_MACHINE_ARN": self.provisioned.state_machine_arn,
            "KILN_ARTIFACT_BUCKET": self.provisioned.bucket,
            "KILN_TABLE_PREFIX": self.options.table_prefix,
            "KILN_JWT_KEY_FILE": str(public_key),
            "KILN_JWT_ALGORITHMS": "RS256",
            "KILN_JWT_ISSUER": tokens.ISSUER,
            "KILN_JWT_AUDIENCE": tokens.AUDIENCE,
            "KILN_JOB_STALE_SECONDS": str(self.options.job_timeout_seconds * 2 + 60),
            # Cachito requests run on this machine's own build host unless told otherwise
            "KILN_CACHITO_ARCH": os.environ.get("KILN_CACHITO_ARCH", native_arch()),
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "Kiln",
            "POWERTOOLS_SERVICE_NAME": "kiln",
        }

    def _serve_api(self, app_module: Any) -> None:
        from chalice.config import Config

        from infra.local.front import create_front

        config = Config.create(chalice_stage="dev", app_name="kiln", project_dir=str(ROOT))
        routes = getattr(app_module, "streaming_routes", ())
        self._api = create_front(
            app_module.app, config, "127.0.0.1", self.options.api_port, streaming_routes=routes
        )
        threading.Thread(target=self._api.serve_forever, name="api", daemon=True).start()

    def _start_host(self, arch: str) -> subprocess.Popen[bytes]:
        assert self.provisioned is not None
        xname = f"local-{arch}"
        env = dict(os.environ)
        env.update(
            {
                "KILN_HOST_ARCH": arch,
                "KILN_HOST_XNAME": xname,
                "KILN_BUILD_QUEUE_URL": self.provisioned.queue_urls[
                    resources.build_queue_name(arch)
                ],
                "KILN_BUILD_EVENTS_QUEUE_URL": self.provisioned.queue_urls[
                    resources.BUILD_EVENTS_QUEUE
                ],
                "KILN_HOST_WORK_DIR": str(self.options.state_dir / "hosts" / xname),
                "KILN_HEARTBEAT_SECONDS": str(self.options.heartbeat_seconds),
            }
        )
        return subprocess.Popen(host_command(), cwd=ROOT, env=env)

    def _register_hosts(self, private_pem: bytes) -> None:
        """The stack is the admin: it registers its own build hosts, through the IMS API."""
        admin = tokens.mint(private_pem, "demo", "admin")
        for arch in self.options.host_arches:
            response = requests.post(
                f"{self.api_url}/apis/ims/v3/remote-build-nodes",
                json={"xname": f"local-{arch}"},
                headers={"Authorization": f"Bearer {admin}"},
                timeout=10,
            )
            if response.status_code not in (201, 409):
                raise RuntimeError(f"could not register local-{arch}: {response.text}")

    def _wait_for_hosts(self, timeout: float = 60) -> None:
        from chalicelib.domain.builds import nodes as build_nodes

        deadline = time.time() + timeout
        wanted = {f"local-{arch}" for arch in self.options.host_arches}
        while wanted and time.time() < deadline:
            seen = {node.xname for node in build_nodes.registered() if node.last_heartbeat}
            if wanted <= seen:
                return
            if any(host.exits for host in self._hosts):
                raise RuntimeError("a build host exited during start-up; see its output above")
            time.sleep(0.3)
        if wanted:
            log.warning("build hosts not registered after %ss: %s", timeout, sorted(wanted))

    def _write_stack_file(self, private_pem: bytes) -> dict[str, Any]:
        assert self.provisioned is not None
        stack = {
            "api_url": self.api_url,
            "ims_url": f"{self.api_url}/apis/ims",
            "composer_url": f"{self.api_url}/api/image-builder-composer/v2",
            "glance_url": self.api_url,
            "cachito_url": self.api_url,  # a Cachito client's base URL (it appends /api/v1)
            "omps_url": f"{self.api_url}/omps",  # an OMPS client's base URL (it appends /v2/...)
            "appregistry_url": f"{self.api_url}/cnr",  # Kiln's app registry (Quay's CNR API)
            "console_url": f"{self.api_url}/console/",  # the web console (docs/console.md)
            "aws_endpoint_url": os.environ["AWS_ENDPOINT_URL"],
            "region": REGION,
            "artifact_bucket": self.provisioned.bucket,
            "state_machine_arn": self.provisioned.state_machine_arn,
            "queues": self.provisioned.queue_urls,
            "dead_letter_queues": self.provisioned.dead_letter_urls,
            "build_hosts": [f"local-{arch}" for arch in self.options.host_arches],
            "data_dir": str(self.options.data_dir) if self.options.data_dir else None,
            "tokens": tokens.for_stack(private_pem),  # demo's admin, user and worker tokens
            **self._oauth,  # token_url, and service_account: demo's client credentials
        }
        with self._stack_lock:
            self._stack = stack
            self._write_stack_locked()
        return stack

    def _update_stack_file(self) -> None:
        """A host restarted: stack.json gets its new pid (once written, never after stop)."""
        with self._stack_lock:
            if self._stack is not None and not self.stop_event.is_set():
                self._write_stack_locked()

    def _write_stack_locked(self) -> None:
        """stack.json, replaced whole (readers never see half of it); ``build_host_processes``:
        per xname, the host program's ``pid``, its ``restarts`` and when it last ``started``."""
        assert self._stack is not None
        self._stack["build_host_processes"] = {host.name: host.info() for host in self._hosts}
        path = self.options.state_dir / "stack.json"
        partial = path.with_name(".stack.json.tmp")
        partial.write_text(json.dumps(self._stack, indent=2) + "\n", encoding="utf-8")
        partial.replace(path)

    def stop(self) -> None:
        self.stop_event.set()  # first: no supervisor restarts a host from here on
        for host in self._hosts:
            host.terminate()
        for host in self._hosts:
            host.wait(timeout=30)
        batch_runner.stop(self._batch)
        if self._api is not None:
            self._api.shutdown()
        if self._tokens is not None:
            self._tokens.shutdown()
        if self._moto is not None:
            control.stop_moto(self._moto)  # SIGTERM: moto checkpoints its data, then exits
        with self._stack_lock:
            (self.options.state_dir / "stack.json").unlink(missing_ok=True)
        control.remove_pid(self.options.state_dir)
        if self._data_lock is not None:
            self._data_lock.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
    logging.getLogger("botocore").setLevel(logging.WARNING)
    options = StackOptions.from_env()
    try:
        control.require_free(options.api_port, "KILN_API_PORT")
        control.require_free(options.aws_port, "KILN_AWS_PORT")
        control.require_free(options.token_port, "KILN_TOKEN_PORT")
        token_server.ttl_from_env()  # KILN_SERVICE_TOKEN_SECONDS, checked before anything starts
        settings = Settings.from_env()
        organizations.check_settings(settings.omps_organizations, settings.omps_robots)
        koji_cg.parse_hubs(settings.koji_hubs)
        batch_runner.arches_from_env()  # KILN_BATCH_ARCHES
        enabled_faces()  # KILN_FACES
        data = options.data_dir
        data_lock = control.lock_data_dir(data) if data is not None else None
    except (control.PortInUse, ValueError, control.DataDirInUse) as exc:
        print(f"Kiln cannot start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    stack = LocalStack(options, data_lock)
    done = threading.Event()

    def stopping(*_: object) -> None:
        stack.stop_event.set()  # at once: a host the same Ctrl-C stopped is not restarted
        done.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stopping)
    try:
        info = stack.start()
        kept = info["data_dir"] or "in memory only (KILN_DATA_DIR=none): gone when it stops"
        print(
            f"\nKiln is up.\n  API:        {info['api_url']}  (IMS at {info['ims_url']})\n"
            f"  Composer:   {info['composer_url']}\n"
            f"  Tokens URL: {info['token_url']}  (OAuth2 client credentials)\n"
            f"  Glance:     {info['glance_url']}  (/v2/images)\n"
            f"  Cachito:    {info['cachito_url']}  (/api/v1/requests)\n"
            f"  OMPS:       {info['omps_url']}  (/v2/<organization>/zipfile)\n"
            f"  Registry:   {info['appregistry_url']}  (/api/v1/packages, as Quay's appregistry)\n"
            f"  Console:    {info['console_url']}  (paste tokens.user from stack.json)\n"
            f"  CLI:        .venv/bin/kiln  (reads stack.json; `kiln --help`)\n"
            f"  AWS (moto): {info['aws_endpoint_url']}\n"
            f"  Hosts:      {', '.join(info['build_hosts']) or 'none'}\n"
            + "".join(f"              ({note})\n" for note in stack.options.hosts_not_started)
            + f"  Tokens:     {stack.options.state_dir / 'stack.json'}\n"
            f"  Data:       {kept}\n"
            "Ctrl-C (or `make down`) stops it.\n",
            flush=True,
        )
        done.wait()
    finally:
        print("Stopping Kiln...", flush=True)
        stack.stop()


if __name__ == "__main__":
    main()
