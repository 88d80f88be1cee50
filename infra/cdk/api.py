"""The Chalice app through chalice's CDK construct (`chalice package` underneath): API Gateway
with every enabled face, the SQS consumers and the cleanup schedule, each function with its own
role, log group, X-Ray and the environment the app reads (chalicelib/config.py)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from chalice.cdk import Chalice
from chalice.config import Config as ChaliceConfig
from chalice.deploy.packager import PipRunner

from chalicelib.config import (
    BUILD_EVENTS_QUEUE,
    GLANCE_IMPORTS_QUEUE,
    UPLOAD_EVENTS_QUEUE,
)
from infra import resources
from infra.cdk import nag
from infra.cdk.api_permissions import (
    GLANCE_IMPORT_SENDERS,
    PROVENANCE_KEY_USERS,
    data_statements,
)
from infra.cdk.settings import DeploySettings
from infra.cdk.storage import Storage
from infra.cdk.workflow import BuildWorkflow

ROOT = Path(__file__).resolve().parents[2]
API_STAGE = "api"  # .chalice/config.json stages.dev.api_gateway_stage
#: The functions' runtime. Chalice takes it from the Python that packages (this venv's 3.11,
#: which Lambda no longer creates: deprecated 2026-06-30); packaged for 3.13, chalice fetches
#: cp313 manylinux wheels for the compiled dependencies (Kiln's own code runs on 3.11 and 3.13)
LAMBDA_PYTHON = "python3.13"


class Function:
    """One function `chalice package` makes: its logical IDs in the SAM template."""

    def __init__(self, name: str, logical: str, queue: str | None, starts_builds: bool) -> None:
        self.name = name  # .chalice/config.json stages.<stage>.lambda_functions.<name>
        self.logical = logical
        self.role = "".join(part.capitalize() for part in name.split("_")) + "Role"
        self.queue = queue  # the queue it consumes
        self.starts_builds = starts_builds


FUNCTIONS = (
    Function("api_handler", "APIHandler", None, starts_builds=True),
    # recipe archives and Glance direct uploads: records and objects only
    Function("on_upload_event", "OnUploadEvent", UPLOAD_EVENTS_QUEUE, starts_builds=False),
    Function("on_build_event", "OnBuildEvent", BUILD_EVENTS_QUEUE, starts_builds=True),
    Function("on_cleanup_schedule", "OnCleanupSchedule", None, starts_builds=True),
    Function("on_glance_import", "OnGlanceImport", GLANCE_IMPORTS_QUEUE, starts_builds=False),
)


def app_environment(settings: DeploySettings) -> dict[str, str]:
    """The environment every Lambda function and the data plane share (static values)."""
    env = {
        "KILN_TABLE_PREFIX": settings.table_prefix,
        "KILN_JWT_ISSUER": settings.jwt_issuer,
        "KILN_JWT_AUDIENCE": settings.jwt_audience,
        "KILN_JWT_ALGORITHMS": settings.jwt_algorithms,
        "KILN_JWT_JWKS_URL": settings.jwt_jwks_url,
        "KILN_FACES": ",".join(settings.faces),
        # the build-event handler registers a build host it first hears of (the fleets' and
        # Batch's instances, which only their roles can speak for on the build-events queue)
        "KILN_NODE_AUTO_REGISTER": "1" if settings.node_auto_register else "0",
    }
    if settings.jwt_public_key:
        env["KILN_JWT_KEY"] = settings.jwt_public_key
    return env


class KilnApi:
    """Not a construct of its own: the Chalice construct must sit directly in the stack, whose
    id is the Chalice stage (`chalice package --stage <stack id>`)."""

    def __init__(
        self,
        stack: cdk.Stack,
        *,
        settings: DeploySettings,
        storage: Storage,
        workflow: BuildWorkflow,
    ) -> None:
        self._stack = stack
        self._storage = storage
        self._settings = settings
        stage_config = {
            "environment_variables": app_environment(settings),
            "xray": True,
            "api_gateway_endpoint_type": "REGIONAL",
        }
        with _packaging_dir() as work:
            # each function's role (manage_iam_role, autogen_policy false: .chalice/config.json)
            # starts from this file; its Policies are replaced below with the real statements
            policy = work / "placeholder-policy.json"
            policy.write_text(json.dumps({"Version": "2012-10-17", "Statement": []}))
            stage_config["iam_policy_file"] = str(policy)
            with _lambda_python(LAMBDA_PYTHON):
                self.chalice = Chalice(
                    stack, "Kiln", source_dir=str(ROOT), stage_config=stage_config
                )
        tokens = {
            "KILN_ARTIFACT_BUCKET": storage.bucket.bucket_name,
            "KILN_STATE_MACHINE_ARN": workflow.state_machine.state_machine_arn,
            "KILN_PROVENANCE_KEY": storage.provenance_key.key_arn,
        }
        self.log_groups: dict[str, logs.LogGroup] = {}
        for function in FUNCTIONS:
            for key, value in tokens.items():
                self.chalice.add_environment_variable(key, value, function.logical)
            self._function(function, workflow)
        self.rest_api = self.chalice.get_resource("RestAPI")
        self._api_gateway()
        self.url = cdk.Fn.sub(
            "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/" + API_STAGE + "/"
        )
        if settings.api_domain and settings.certificate_arn:
            self.url = self._custom_domain(settings.api_domain, settings.certificate_arn)

    def function_ref(self, function: Function) -> str:
        return self.chalice.get_resource(function.logical).ref

    # -- one function ------------------------------------------------------------------------
    def _function(self, function: Function, workflow: BuildWorkflow) -> None:
        stack, storage = self._stack, self._storage
        log_group = logs.LogGroup(
            stack,
            f"{function.logical}Logs",
            log_group_name=f"/kiln/{stack.stack_name}/lambda/{function.name}",
            retention=self._settings.log_retention,
            encryption_key=storage.key,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.log_groups[function.name] = log_group
        cfn_function = self.chalice.get_resource(function.logical)
        cfn_function.add_property_override(
            "LoggingConfig", {"LogGroup": log_group.log_group_name, "LogFormat": "Text"}
        )
        statements = [
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            ),
            # X-Ray's trace APIs take no resource (AWS: Resource "*")
            iam.PolicyStatement(
                actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources=["*"]
            ),
            *data_statements(storage),
        ]
        if function.starts_builds:
            statements.append(
                iam.PolicyStatement(
                    actions=["states:StartExecution"],
                    resources=[workflow.state_machine.state_machine_arn],
                )
            )
        signs = PROVENANCE_KEY_USERS.get(function.name)
        if signs:
            statements.append(
                iam.PolicyStatement(actions=list(signs), resources=[storage.provenance_key.key_arn])
            )
        queues = storage.queues
        if function.name in GLANCE_IMPORT_SENDERS:
            statements.append(
                iam.PolicyStatement(
                    actions=["sqs:SendMessage", "sqs:GetQueueUrl"],
                    resources=[queues[GLANCE_IMPORTS_QUEUE].queue_arn],
                )
            )
        if function.queue:
            queue = queues[function.queue]
            statements.append(
                iam.PolicyStatement(
                    actions=[
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility",
                        "sqs:GetQueueAttributes",
                        "sqs:GetQueueUrl",
                    ],
                    resources=[queue.queue_arn],
                )
            )
            # the Lambda poller must not start before the queue exists (chalice names the queue
            # by ARN string); partial batch responses (resources.PARTIAL_BATCH_RESPONSE)
            cfn_function.node.add_dependency(queue)
            event = f"{function.logical}SqsEventSource"  # chalice's name for the SQS event
            spec = next(s for s in resources.queues() if s.name == function.queue)
            cfn_function.add_property_override(
                f"Events.{event}.Properties.FunctionResponseTypes",
                list(spec.function_response_types),
            )
        if function.name == "on_cleanup_schedule":
            # the cleanup reports every dead-letter queue (count, a peek with visibility 0)
            statements.append(
                iam.PolicyStatement(
                    actions=["sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
                    resources=[queue.queue_arn for queue in storage.dead_letter_queues.values()],
                )
            )
        document = iam.PolicyDocument(statements=statements)
        role = self.chalice.get_resource(function.role)
        role.add_property_override(
            "Policies",
            [{"PolicyName": f"{function.name}-least-privilege", "PolicyDocument": document}],
        )
        nag.suppress(
            role,
            "AwsSolutions-IAM5",
            "X-Ray's PutTraceSegments/PutTelemetryRecords take no resource ('*' is what AWS "
            "documents); '<table ARN>/index/*' is every index of Kiln's own tables (queries "
            "by GSI); '<bucket ARN>/*' is the artifact bucket's objects, whose keys are ids "
            "made at run time",
            children=True,
        )

    # -- API Gateway -------------------------------------------------------------------------
    def _api_gateway(self) -> None:
        stack, storage = self._stack, self._storage
        access_logs = logs.LogGroup(
            stack,
            "ApiAccessLogs",
            log_group_name=f"/kiln/{stack.stack_name}/api-access",
            retention=self._settings.log_retention,
            encryption_key=storage.key,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.rest_api.add_property_override("TracingEnabled", True)
        self.rest_api.add_property_override(
            "AccessLogSetting",
            {
                "DestinationArn": access_logs.log_group_arn,
                "Format": json.dumps(_ACCESS_LOG_FORMAT, separators=(",", ":")),
            },
        )
        self.rest_api.add_property_override(
            "MethodSettings",
            [
                {
                    "ResourcePath": "/*",
                    "HttpMethod": "*",
                    "MetricsEnabled": True,
                    "LoggingLevel": "ERROR",
                    "DataTraceEnabled": False,
                }
            ],
        )
        # API Gateway writes logs through one role per account and region
        cloudwatch_role = iam.Role(
            stack,
            "ApiGatewayCloudWatchRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                )
            ],
        )
        nag.suppress(
            cloudwatch_role,
            "AwsSolutions-IAM4",
            "AmazonAPIGatewayPushToCloudWatchLogs is the policy AWS provides for API Gateway's "
            "account-wide logging role; API Gateway names its log groups itself",
        )
        account = apigw.CfnAccount(
            stack, "ApiGatewayAccount", cloud_watch_role_arn=cloudwatch_role.role_arn
        )
        self.rest_api.node.add_dependency(account)

    def _custom_domain(self, domain: str, certificate_arn: str) -> str:
        name = apigw.CfnDomainName(
            self._stack,
            "ApiDomain",
            domain_name=domain,
            regional_certificate_arn=certificate_arn,
            endpoint_configuration=apigw.CfnDomainName.EndpointConfigurationProperty(
                types=["REGIONAL"]
            ),
            security_policy="TLS_1_2",
        )
        mapping = apigw.CfnBasePathMapping(
            self._stack,
            "ApiDomainMapping",
            domain_name=name.ref,
            rest_api_id=self.rest_api.ref,
            stage=cdk.Fn.ref("RestAPI.Stage"),  # SAM: the API's stage, made by the transform
        )
        cdk.Validations.of(mapping).acknowledge(
            cdk.Acknowledgment(
                id="CloudFormation-Validate::F1020",
                reason="Ref RestAPI.Stage is SAM's reference to the stage the transform makes "
                "for the Chalice API (and a dependency on it); it exists after the transform",
            )
        )
        cdk.CfnOutput(
            self._stack,
            "ApiDomainTarget",
            value=name.attr_regional_domain_name,
            description=f"CNAME (or alias) target for {domain}",
        )
        return f"https://{domain}/"


_ACCESS_LOG_FORMAT: dict[str, Any] = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "path": "$context.path",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "integrationLatency": "$context.integration.latency",
}


@contextlib.contextmanager
def _packaging_dir() -> Iterator[Path]:
    """The construct writes `chalice package`'s output under the working directory
    (chalice.out/); a temporary one keeps the repository clean. The construct stages the code
    zip as a CDK asset and reads the template before this is removed."""
    before = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="kiln-chalice-") as work:
        os.chdir(work)
        try:
            yield Path(work)
        finally:
            os.chdir(before)


@contextlib.contextmanager
def _lambda_python(version: str) -> Iterator[None]:
    """`chalice package` for ``version`` whatever Python runs it. Chalice has no setting for it
    (Config.lambda_python_version reads sys.version_info), and its manylinux wheel download
    passes ``--abi`` without ``--python-version``, which pip then takes from the running Python:
    both are set here for the packaging only."""
    original_version = ChaliceConfig.lambda_python_version
    original_download = PipRunner.download_manylinux_wheels

    def download(
        runner: PipRunner,
        abi: str,
        packages: list[str],
        directory: str,
        platforms: list[str] | None = None,
    ) -> None:
        for package in packages:  # one at a time, as chalice does: a failure skips only it
            arguments = ["--only-binary=:all:", "--no-deps", "--python-version", abi[2:]]
            for platform in platforms or ["manylinux2014_x86_64"]:
                arguments.extend(["--platform", platform])
            arguments.extend(["--implementation", "cp", "--abi", abi, "--dest", directory])
            runner._execute("download", [*arguments, package])

    ChaliceConfig.lambda_python_version = property(lambda _: version)  # type: ignore[assignment,method-assign]
    PipRunner.download_manylinux_wheels = download  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        ChaliceConfig.lambda_python_version = original_version  # type: ignore[method-assign]
        PipRunner.download_manylinux_wheels = original_download  # type: ignore[method-assign]
