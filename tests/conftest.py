"""Shared fixtures: moto in-process for the API tests, with resources made by the same
provisioning code `make up` uses, and tokens signed by a test key."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import itertools
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import botocore.session
import pynamodb.connection.base
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib import container as container_module
from chalicelib.config import BUILD_EVENTS_QUEUE, UPLOAD_EVENTS_QUEUE, Settings
from infra import resources
from infra.local import dynamodb_limits, moto_kms, tokens
from infra.local.provision import Provisioned, provision

# tests/skip_policy.py: a run of the whole suite fails on any skip whose reason it does not
# document; pytester runs that plugin's own tests (tests/test_skip_policy.py).
pytest_plugins = ("pytester", "tests.skip_policy")

# One botocore session for PynamoDB in the test process: its connections otherwise load the
# DynamoDB service model again for every model class in every test (the tests are single-
# threaded; the product keeps PynamoDB's own session per connection).
_shared_botocore_session = functools.cache(botocore.session.get_session)
pynamodb.connection.base.get_session = _shared_botocore_session  # type: ignore[attr-defined]


def _dynamodb_limits(params: dict[str, Any], model: Any, **_: Any) -> None:
    """In-process moto refuses, as DynamoDB does, keys and items over DynamoDB's sizes."""
    try:
        dynamodb_limits.check(model.name, params)
    except dynamodb_limits.LimitExceeded as exc:
        error = {"Error": {"Code": "ValidationException", "Message": str(exc)}}
        raise botocore.exceptions.ClientError(error, model.name) from None  # type: ignore[arg-type]


_shared_botocore_session().register("provide-client-params.dynamodb.*", _dynamodb_limits)
# moto signs a KMS DIGEST as AWS does (infra/local/moto_kms.py): the provenance signer sends
# one, and provision() makes the signing key in every moto the tests start
moto_kms.install()

REGION = "us-east-1"
BUCKET = "kiln-artifacts"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    private_path, public_path = tokens.ensure_keys(tmp_path_factory.mktemp("keys"))
    return private_path.read_bytes(), public_path.read_text()


def use_test_aws_env(patch: pytest.MonkeyPatch) -> None:
    """Fake credentials, this region, no endpoint override: in-process moto, never AWS."""
    for name in ("AWS_ENDPOINT_URL", "MOTO_PORT", "AWS_PROFILE"):
        patch.delenv(name, raising=False)
    patch.setenv("AWS_ACCESS_KEY_ID", "testing")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    patch.setenv("AWS_DEFAULT_REGION", REGION)
    patch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    patch.setenv("POWERTOOLS_METRICS_NAMESPACE", "KilnTest")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    use_test_aws_env(monkeypatch)


#: in-process moto never runs the state machine, whatever a moto-server test of this process
#: configured (moto keeps that setting per process): an execution started here would wait out
#: its heartbeat and then report a failure into a later test's queues
IN_PROCESS = {"stepfunctions": {"execute_state_machine": False}}


@pytest.fixture
def aws(aws_env: None) -> Iterator[Provisioned]:
    with mock_aws(config=IN_PROCESS):  # type: ignore[arg-type]
        yield provision(REGION, "kiln", BUCKET, resources.Timing())


def settings_for(provisioned: Provisioned, public_pem: str, **overrides: Any) -> Settings:
    base = Settings.from_env()
    return dataclasses.replace(
        base,
        region=REGION,
        table_prefix="kiln",
        artifact_bucket=provisioned.bucket,
        state_machine_arn=provisioned.state_machine_arn,
        jwt_key=public_pem,
        jwt_algorithms=("RS256",),
        jwt_issuer=tokens.ISSUER,
        jwt_audience=tokens.AUDIENCE,
        **overrides,
    )


@dataclasses.dataclass
class Kiln:
    """The app behind chalice's test client, plus tokens and the SQS-event entry points."""

    client: Client
    private_pem: bytes
    provisioned: Provisioned

    def configure(self, **changes: Any) -> None:
        """Change settings for the rest of the test, as a redeploy with new config would."""
        current = container_module.container().settings
        container_module.use(container_module.Container(dataclasses.replace(current, **changes)))

    def token(self, tenant: str = "demo", role: str = "user") -> str:
        return tokens.mint(self.private_pem, tenant, role)

    def headers(self, tenant: str = "demo", role: str = "user") -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token(tenant, role)}",
            "Content-Type": "application/json",
        }

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        tenant: str = "demo",
        role: str = "user",
        headers: dict[str, str] | None = None,
    ) -> Any:
        payload = None if body is None else (body if isinstance(body, str) else json.dumps(body))
        return getattr(self.client.http, method.lower())(
            path,
            headers=headers if headers is not None else self.headers(tenant, role),
            body=payload,
        )

    def build_events(self, *messages: dict[str, Any], failing: int = 0) -> None:
        """Deliver the messages as one batch; exactly ``failing`` of them must be reported
        failed (batchItemFailures: retried, then dead-lettered), so a test event that breaks
        the protocol cannot pass unnoticed."""
        event = self.client.events.generate_sqs_event(
            queue_name=BUILD_EVENTS_QUEUE, message_bodies=[json.dumps(m) for m in messages]
        )
        answer = self.client.lambda_.invoke("on_build_event", event).payload
        failed = (answer or {}).get("batchItemFailures", [])
        assert len(failed) == failing, f"{len(failed)} of the build events failed: {messages}"

    def upload_events(self, *bodies: str) -> None:
        event = self.client.events.generate_sqs_event(
            queue_name=UPLOAD_EVENTS_QUEUE, message_bodies=list(bodies)
        )
        self.client.lambda_.invoke("on_upload_event", event)

    def register_host(
        self,
        arch: str = "x86_64",
        recipe_types: tuple[str, ...] = ("kiln-debian", "kiln-noop"),
        xname: str = "test-host",
        job_types: tuple[str, ...] = ("create", "customize"),
    ) -> None:
        """An admin registers the node and the host heartbeats, as in `make up`."""
        registered = self.call(
            "POST", "/apis/ims/v3/remote-build-nodes", {"xname": xname}, role="admin"
        )
        assert registered.status_code in (201, 409), registered.body
        self.heartbeat(arch, recipe_types, xname, job_types)

    def heartbeat(
        self,
        arch: str = "x86_64",
        recipe_types: tuple[str, ...] = ("kiln-debian", "kiln-noop"),
        xname: str = "test-host",
        job_types: tuple[str, ...] = ("create", "customize"),
        accepting: bool = True,
        current_job: str | None = None,
    ) -> None:
        self.build_events(
            {
                "type": "node_heartbeat",
                "xname": xname,
                "arch": arch,
                "recipe_types": list(recipe_types),
                "job_types": list(job_types),
                "accepting": accepting,
                "current_job": current_job,
            }
        )


@pytest.fixture
def kiln(aws: Provisioned, signing_keys: tuple[bytes, str]) -> Iterator[Kiln]:
    private_pem, public_pem = signing_keys
    container_module.use(container_module.Container(settings_for(aws, public_pem)))
    import app as app_module

    with Client(app_module.app) as client:
        yield Kiln(client, private_pem, aws)
    container_module._current.clear()


def make_archive(
    files: dict[str, bytes | str], extra: list[tarfile.TarInfo] | None = None
) -> bytes:
    """A tar.gz with the given files (and any hand-made members, for the unsafe cases)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    return buffer.getvalue()


def example_archive(name: str) -> bytes:
    """An examples/recipes/<name> directory as the archive a user uploads."""
    buffer = io.BytesIO()
    folder = ROOT / "examples" / "recipes" / name
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            if path.name != "recipe.json":
                tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buffer.getvalue()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class MotoStack:
    provisioned: Provisioned
    endpoint: str
    region: str

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=self.region)


# Each moto-server test gets a region of its own: moto keeps state per process and an
# execution's timers can outlive its test, so a region apart keeps one test's leftovers out of
# the next test's queues.
_REGIONS = itertools.cycle(
    [
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "eu-west-1",
        "eu-west-2",
        "eu-central-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-northeast-1",
        "ca-central-1",
        "sa-east-1",
    ]
)


@pytest.fixture
def moto_server(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoStack]:
    """moto in server mode with Step Functions execution on, provisioned like `make up` does,
    with a 2-second heartbeat so silence is noticed quickly."""
    import requests
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("MOTO_PORT", str(port))
    region = next(_REGIONS)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    requests.post(
        f"{endpoint}/moto-api/config",
        json={"stepfunctions": {"execute_state_machine": True}},
        timeout=5,
    )
    try:
        timing = resources.Timing(heartbeat_seconds=2, job_timeout_seconds=60)
        stack = MotoStack(provision(region, "kiln", BUCKET, timing), endpoint, region)
        yield stack
        settle_executions(stack)
    finally:
        requests.post(f"{endpoint}/moto-api/config", json=IN_PROCESS, timeout=5)
        requests.post(f"{endpoint}/moto-api/reset", timeout=5)
        server.stop()


def settle_executions(stack: MotoStack, timeout: float = 30) -> None:
    """End every execution a test left waiting (a silent or stopped host), by failing the task
    tokens still queued, so no execution outlives its test and reaches the next test's server."""
    import time

    sqs, sfn = stack.client("sqs"), stack.client("stepfunctions")
    arn = stack.provisioned.state_machine_arn
    build_queues = [url for name, url in stack.provisioned.queue_urls.items() if "builds" in name]
    deadline = time.time() + timeout
    while time.time() < deadline:
        running = sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]
        if not running:
            return
        for url in build_queues:
            for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
                "Messages", []
            ):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                with contextlib.suppress(Exception):
                    token = json.loads(message["Body"])["token"]
                    sfn.send_task_failure(taskToken=token, error="TestTeardown")
        time.sleep(0.2)
    raise AssertionError(f"executions still running after the test: {running}")
