"""Kiln on AWS: the CDK app (``cdk.json``: ``python -m infra.cdk.app``; offline:
``python -m infra.cdk.synth``). One stack, named after the Chalice stage (``dev``), environment-
agnostic for the account, its region and availability zones given (no lookups)."""

from __future__ import annotations

import os
import sys
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from chalicelib.config import ARCHES, BUILD_EVENTS_QUEUE, GLANCE_IMPORTS_QUEUE, build_queue_name
from infra.cdk import nag
from infra.cdk.api import API_STAGE, FUNCTIONS, KilnApi, app_environment
from infra.cdk.batch import BatchBuilds
from infra.cdk.build_hosts import BuildHostFleet
from infra.cdk.data_plane import DataPlane
from infra.cdk.monitoring import Monitoring
from infra.cdk.settings import DeploySettings, SettingsError
from infra.cdk.storage import Storage
from infra.cdk.workflow import BuildWorkflow

VPC_CIDR = "10.40.0.0/16"
API_NAME = "kiln"  # the OpenAPI title `chalice package` gives the REST API (app_name)
#: CDK feature flags, here rather than in cdk.json so that `python -m infra.cdk.synth` (which
#: reads no cdk.json) and `cdk deploy` make the same templates
FEATURE_FLAGS = {
    # the access-log bucket admits S3's log delivery by bucket policy, not the legacy ACL
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
}


class KilnStack(cdk.Stack):
    def __init__(self, scope: Construct, settings: DeploySettings) -> None:
        self._zones = list(settings.availability_zones)
        super().__init__(
            scope,
            settings.stage,  # = the Chalice stage: the construct packages with --stage <id>
            env=cdk.Environment(region=settings.region),
            description="Kiln: OS-image build service (infra/cdk, docs/deploy.md)",
        )
        self.settings = settings
        storage = Storage(self, "Storage", settings=settings)
        queues = storage.queues
        workflow = BuildWorkflow(
            self, "Workflow", settings=settings, key=storage.key, queues=queues
        )
        api = KilnApi(self, settings=settings, storage=storage, workflow=workflow)
        vpc = self._vpc(settings, storage)

        shared = {
            **app_environment(settings),
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "KILN_ARTIFACT_BUCKET": storage.bucket.bucket_name,
            "KILN_STATE_MACHINE_ARN": workflow.state_machine.state_machine_arn,
            "KILN_BUILD_EVENTS_QUEUE_URL": queues[BUILD_EVENTS_QUEUE].queue_url,
            "KILN_GLANCE_IMPORTS_QUEUE_URL": queues[GLANCE_IMPORTS_QUEUE].queue_url,
        }
        self.hosts: dict[str, Construct] = {}
        for arch in ARCHES:
            self.hosts[arch] = self._hosts(settings, arch, vpc, storage, workflow, shared)
        data_plane = DataPlane(
            self,
            "DataPlane",
            vpc=vpc,
            bucket=storage.bucket,
            key=storage.key,
            table_arns=storage.table_arns,
            environment=shared,
            certificate_arn=settings.certificate_arn,
            domain_name=settings.data_domain,
        )
        Monitoring(
            self,
            "Monitoring",
            settings=settings,
            key=storage.key,
            dead_letter_queues=dict(storage.dead_letter_queues),
            state_machine=workflow.state_machine,
            api_name=API_NAME,
            api_stage=API_STAGE,
            functions={f.name: api.function_ref(f) for f in FUNCTIONS},
        )
        outputs = {
            "ApiUrl": (api.url, "Every face's API (docs/deploy.md, 'Clients')"),
            "DataPlaneUrl": (data_plane.url, "Streaming uploads/downloads (Glance, Cachito)"),
            "ArtifactBucketName": (storage.bucket.bucket_name, "Kiln's artifacts"),
            "StateMachineArn": (workflow.state_machine.state_machine_arn, "Build workflow"),
        }
        for name, (value, description) in outputs.items():
            cdk.CfnOutput(self, name, value=value, description=description)

    @property
    def availability_zones(self) -> list[str]:
        """The operator's zones (settings), never a lookup or Fn::GetAZs."""
        return self._zones

    def _vpc(self, settings: DeploySettings, storage: Storage) -> ec2.Vpc:
        subnets = [
            ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=22)
        ]
        if not settings.public_subnets_only:
            subnets.append(
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                )
            )
        flow_logs = logs.LogGroup(
            self,
            "VpcFlowLogs",
            retention=settings.log_retention,
            encryption_key=storage.key,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
            availability_zones=list(settings.availability_zones),
            nat_gateways=settings.nat_gateways,
            subnet_configuration=subnets,
            # images and logs go to S3, records to DynamoDB: free gateway endpoints, no NAT bytes
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDB": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
                ),
            },
            # rejected connections only: what a security review asks for, at little ingestion
            flow_logs={
                "Rejected": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                    traffic_type=ec2.FlowLogTrafficType.REJECT,
                )
            },
        )
        for subnet in [*vpc.public_subnets, *vpc.private_subnets]:
            cfn_subnet: ec2.CfnSubnet = subnet.node.default_child  # type: ignore[assignment]
            cfn_subnet.add_metadata(
                "cfn-lint", {"config": {"ignore_checks": ["W3010"]}}
            )  # the operator's zones, on purpose (below)
        cdk.Validations.of(vpc).acknowledge(
            cdk.Acknowledgment(
                id="CloudFormation-Validate::W3010",
                reason="the zones are the operator's availability_zones setting: synth makes no "
                "lookups, and Fn::GetAZs would let the subnets move when a region adds zones",
            )
        )
        return vpc

    def _hosts(
        self,
        settings: DeploySettings,
        arch: str,
        vpc: ec2.IVpc,
        storage: Storage,
        workflow: BuildWorkflow,
        shared: dict[str, str],
    ) -> Construct:
        chosen = settings.arch(arch)
        queue = storage.queues[build_queue_name(arch)]
        common: dict[str, Any] = {
            "arch": arch,
            "vpc": vpc,
            "instance_types": list(chosen.instance_types),
            "bucket": storage.bucket,
            "key": storage.key,
            "build_queue": queue,
            "events_queue": storage.queues[BUILD_EVENTS_QUEUE],
            "state_machine": workflow.state_machine,
            "environment": {
                **shared,
                "KILN_HOST_ARCH": arch,
                "KILN_BUILD_QUEUE_URL": queue.queue_url,
            },
        }
        name = arch.replace("_", "")
        if chosen.host_mode == "batch":
            return BatchBuilds(
                self, f"BatchBuilds-{name}", max_vcpus=settings.batch_max_vcpus, **common
            )
        return BuildHostFleet(
            self,
            f"BuildHosts-{name}",
            min_capacity=chosen.min_hosts,
            max_capacity=chosen.max_hosts,
            **common,
        )


def build_app(context: dict[str, Any] | None = None, outdir: str | None = None) -> cdk.App:
    """The app with its one stack and cdk-nag attached. ``context``: as ``-c key=value``; the
    CDK CLI passes its own through the environment (CDK_CONTEXT_JSON), which App reads."""
    app = cdk.App(outdir=outdir, context={**FEATURE_FLAGS, **(context or {})})
    settings = DeploySettings.from_context(app.node.get_all_context())
    KilnStack(app, settings)
    nag.attach(app)
    return app


def main() -> int:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # chalice package's botocore
    try:
        app = build_app()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
