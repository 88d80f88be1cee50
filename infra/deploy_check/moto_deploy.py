"""A smoke deploy of the synthesized cloud assembly into moto's CloudFormation.

``moto_server()`` starts a fresh moto the way the local stack does (infra/local/moto_process.py,
Step Functions executing); ``deploy()`` does what ``cdk deploy`` and CloudFormation's SAM
transform would: it "bootstraps" (the CDK asset bucket, the bootstrap version parameter),
uploads the file assets (docker image assets are skipped: moto pulls no image), expands each
``AWS::Serverless-2016-10-31`` template with aws-sam-translator, and creates the stacks in
dependency order, each waited for until CREATE_COMPLETE. moto creates no resource of a type its
CloudFormation does not implement (it only warns): ``Deployment.skipped`` lists them; what else
moto does differently, and how the deploy makes up for it, is in moto_gaps.py.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import requests

from infra.deploy_check import ACCOUNT, REGION, ROOT
from infra.deploy_check.moto_gaps import (
    DeployFailed,
    adapt_for_moto,
    apply_bucket_notifications,
    apply_time_to_live,
    carry_state_machines,
    unsupported_types,
)

BOOTSTRAP_QUALIFIER = "hnb659fds"
BOOTSTRAP_VERSION = "30"
#: AWS managed policies by name, for SAM's ``Policies: [<name>]`` (the translator would list them
#: from IAM, which moto does not have)
MANAGED_POLICIES = {
    name: f"arn:aws:iam::aws:policy/{path}{name}"
    for path, name in (
        ("service-role/", "AWSLambdaBasicExecutionRole"),
        ("service-role/", "AWSLambdaSQSQueueExecutionRole"),
        ("service-role/", "AWSLambdaVPCAccessExecutionRole"),
        ("service-role/", "AWSLambdaDynamoDBExecutionRole"),
        ("", "AWSXRayDaemonWriteAccess"),
        ("", "AWSXrayWriteOnlyAccess"),
        ("", "CloudWatchLambdaInsightsExecutionRolePolicy"),
    )
}


@dataclasses.dataclass
class MotoServer:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str) -> Any:
        return boto3.session.Session().client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id="kiln-deploy-check",
            aws_secret_access_key="kiln-deploy-check",
        )

    def environment(self) -> dict[str, str]:
        """What infra/local/provision.py's clients read to reach this moto."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "MOTO_PORT": str(self.port),
            "AWS_ACCESS_KEY_ID": "kiln-deploy-check",
            "AWS_SECRET_ACCESS_KEY": "kiln-deploy-check",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def moto_server(log: Path, execute: bool = True) -> Iterator[MotoServer]:
    """A fresh moto server on a free port, as `make up` starts it (infra/local/stack.py), with
    Step Functions executing state machines (``execute``: from the start; deploy() turns it on
    itself); stopped (by its process id) on exit."""
    port = _free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.local.moto_process", "-H", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            env={**os.environ, "MOTO_PORT": str(port), "MOTO_ACCOUNT_ID": ACCOUNT},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = MotoServer(port, process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{server.endpoint}/moto-api/data.json", timeout=2)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start; see {log}") from None
                time.sleep(0.1)
        if execute:
            enable_execution(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def enable_execution(server: MotoServer) -> None:
    """moto's Step Functions runs executions from now on (as `make up` configures it)."""
    requests.post(
        f"{server.endpoint}/moto-api/config",
        json={"stepfunctions": {"execute_state_machine": True}},
        timeout=10,
    ).raise_for_status()


# -- the assembly -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StackArtifact:
    name: str  # the artifact id (the template's file name without .template.json)
    stack_name: str
    template: Path
    dependencies: tuple[str, ...]


def stacks_in_order(out: Path) -> list[StackArtifact]:
    """The assembly's stacks, each after the stacks it depends on (manifest.json)."""
    artifacts = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["artifacts"]
    stacks = {
        name: StackArtifact(
            name,
            artifact.get("properties", {}).get("stackName", name),
            out / artifact["properties"]["templateFile"],
            tuple(d for d in artifact.get("dependencies", ()) if not d.endswith(".assets")),
        )
        for name, artifact in artifacts.items()
        if artifact.get("type") == "aws:cloudformation:stack"
    }
    ordered: list[StackArtifact] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise DeployFailed(f"stack dependency cycle: {' -> '.join(path + (name,))}")
        if name not in stacks or stacks[name] in ordered:
            return
        for dependency in stacks[name].dependencies:
            visit(dependency, path + (name,))
        ordered.append(stacks[name])

    for name in sorted(stacks):
        visit(name, ())
    return ordered


def _concrete(text: str) -> str:
    return (
        text.replace("${AWS::AccountId}", ACCOUNT)
        .replace("${AWS::Region}", REGION)
        .replace("${AWS::Partition}", "aws")
    )


def upload_assets(out: Path, s3: Any) -> list[str]:
    """Every file asset of every ``*.assets.json`` to the bucket and key it names; returns the
    docker image assets skipped (moto cannot build or pull them)."""
    skipped: list[str] = []
    buckets: set[str] = set()
    for manifest_path in sorted(out.glob("*.assets.json")):
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for asset in manifest.get("files", {}).values():
            source = out / asset["source"]["path"]
            if source.name.endswith(".template.json"):
                continue  # a stack's own template: create_stack sends it
            body = _zip_directory(source) if source.is_dir() else source.read_bytes()
            for destination in asset["destinations"].values():
                bucket = _concrete(destination["bucketName"])
                if bucket not in buckets:
                    _ensure_bucket(s3, bucket)
                    buckets.add(bucket)
                s3.put_object(Bucket=bucket, Key=_concrete(destination["objectKey"]), Body=body)
        for asset_id, asset in manifest.get("dockerImages", {}).items():
            skipped.append(f"{manifest_path.name}: {asset.get('displayName', asset_id)}")
    return skipped


def _zip_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, str(path.relative_to(directory)))
    return buffer.getvalue()


def _ensure_bucket(s3: Any, bucket: str) -> None:
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)


def bootstrap(server: MotoServer) -> None:
    """What `cdk bootstrap` leaves in an account that the templates read: the version
    parameter (each stack's BootstrapVersion) and the asset bucket."""
    server.client("ssm").put_parameter(
        Name=f"/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version",
        Value=BOOTSTRAP_VERSION,
        Type="String",
        Overwrite=True,
    )
    _ensure_bucket(server.client("s3"), f"cdk-{BOOTSTRAP_QUALIFIER}-assets-{ACCOUNT}-{REGION}")


# -- SAM --------------------------------------------------------------------------------------


class _FixedPolicies:
    """samtranslator's ManagedPolicyLoader without IAM: a fixed name -> ARN map."""

    def load(self) -> dict[str, str]:
        return dict(MANAGED_POLICIES)


def expand_sam(template: dict[str, Any]) -> dict[str, Any]:
    """The template as CloudFormation's AWS::Serverless-2016-10-31 transform leaves it; a
    template without the transform as it is."""
    transforms = template.get("Transform")
    names = transforms if isinstance(transforms, list) else [transforms] if transforms else []
    if "AWS::Serverless-2016-10-31" not in names:
        return template
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform

    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    try:
        expanded = transform(copy.deepcopy(template), {}, _FixedPolicies())  # type: ignore[arg-type]
    except InvalidDocumentException as error:
        causes = "; ".join(str(cause) for cause in error.causes)
        raise DeployFailed(f"SAM transform failed: {causes}") from error
    others = [name for name in names if name != "AWS::Serverless-2016-10-31"]
    if others:
        expanded["Transform"] = others
    else:
        expanded.pop("Transform", None)
    return expanded


# -- deploy -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Deployment:
    server: MotoServer
    #: stack name -> logical id -> (resource type, physical id)
    resources: dict[str, dict[str, tuple[str, str]]]
    #: resource type -> the stacks whose resources of that type moto did not create
    skipped: dict[str, list[str]]
    skipped_assets: list[str]
    seconds: float
    #: what adapt_for_moto filled in
    adaptations: list[str] = dataclasses.field(default_factory=list)

    def physical(self, resource_type: str) -> list[str]:
        return [
            physical
            for stack in self.resources.values()
            for kind, physical in stack.values()
            if kind == resource_type
        ]


def deploy(out: Path, server: MotoServer, timeout: float = 300) -> Deployment:
    started = time.monotonic()
    bootstrap(server)
    skipped_assets = upload_assets(out, server.client("s3"))
    cloudformation = server.client("cloudformation")
    deployed: dict[str, dict[str, tuple[str, str]]] = {}
    skipped: dict[str, list[str]] = {}
    adaptations: list[str] = []
    for stack in stacks_in_order(out):
        template = expand_sam(json.loads(stack.template.read_text(encoding="utf-8")))
        adaptations += [f"{stack.stack_name}/{note}" for note in adapt_for_moto(template)]
        for kind in unsupported_types(template):
            skipped.setdefault(kind, []).append(stack.stack_name)
        try:
            cloudformation.create_stack(
                StackName=stack.stack_name,
                TemplateBody=json.dumps(template),
                Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
            )
        except Exception as error:  # moto fails CreateStack itself on what it cannot create
            raise DeployFailed(f"{stack.stack_name}: CreateStack failed: {error}") from error
        _wait(cloudformation, stack.stack_name, timeout)
        listed = cloudformation.get_paginator("list_stack_resources").paginate(
            StackName=stack.stack_name
        )
        deployed[stack.stack_name] = {
            summary["LogicalResourceId"]: (
                summary["ResourceType"],
                summary.get("PhysicalResourceId", ""),
            )
            for page in listed
            for summary in page["StackResourceSummaries"]
        }
        ignored = apply_bucket_notifications(
            template, deployed[stack.stack_name], server.client("s3")
        ) + apply_time_to_live(template, deployed[stack.stack_name], server.client("dynamodb"))
        adaptations += [f"{stack.stack_name}/{note}" for note in ignored]
    sfn = server.client("stepfunctions")
    adaptations += carry_state_machines(sfn, lambda: enable_execution(server))
    seconds = time.monotonic() - started
    return Deployment(server, deployed, skipped, skipped_assets, seconds, adaptations)


def _wait(cloudformation: Any, stack_name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            return
        if not status.endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
            reasons = [
                f"{e['LogicalResourceId']}: {e['ResourceStatus']} "
                f"{e.get('ResourceStatusReason', '')}"
                for e in events
                if "FAILED" in e["ResourceStatus"]
            ]
            raise DeployFailed(f"{stack_name} is {status}: " + "; ".join(reasons[:20]))
        time.sleep(0.2)


def quiet_event_source_mappings(server: MotoServer) -> list[str]:
    """Disables every Lambda event source mapping: moto would run the function on each message
    (in docker, which it has not got here) and keep the message from the test; returns the
    mappings' UUIDs."""
    lam = server.client("lambda")
    disabled = []
    for page in lam.get_paginator("list_event_source_mappings").paginate():
        for mapping in page["EventSourceMappings"]:
            lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
            disabled.append(mapping["UUID"])
    return disabled
