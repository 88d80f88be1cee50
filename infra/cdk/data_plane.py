"""Kiln's streaming data plane: the routes whose bodies must stream, on ECS Fargate behind an
internet-facing Application Load Balancer.

Routes (``app.streaming_routes``; the ALB's URL is ``DataPlane.url``):

- Glance ``PUT /v2/images/{id}/file``, ``GET /v2/images/{id}/file``,
  ``PUT /v2/images/{id}/stage`` (chalicelib/faces/glance/data.py ``STREAMING_ROUTES``);
- Cachito ``GET /api/v1/requests/{id}/download`` (chalicelib/faces/cachito/requests.py);
- ``GET /healthz``: the load balancer's health check (assets/data_plane_main.py).

Everything else is API Gateway's (the Chalice app on Lambda); the data plane answers it 403
"Missing Authentication Token", as API Gateway does for a path it does not have. API Gateway
also serves the four routes above, with bodies buffered: there a Glance download larger than
4 MiB (``KILN_GLANCE_INLINE_DATA_MAX``) is a 303 to a presigned S3 URL
(chalicelib/faces/glance/data.py ``download_file``), and an upload is limited to API Gateway's
10 MB payload; clients that move large images use the data plane's URL.

The container runs the local front (infra/local/front.py, unchanged) through
``assets/data_plane_main.py``: ``create_front`` with an empty Chalice app and only the
streaming routes. Authentication is the routes' own (bearer JWT, chalicelib/auth.py), as on
API Gateway. The task role: the given tables (and their indexes), the bucket, the key.
"""

from __future__ import annotations

from aws_cdk import Duration, IgnoreMode, RemovalPolicy
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from cdk_nag import NagSuppressions
from constructs import Construct

from infra.cdk.build_hosts import REPO_ROOT

PORT = 8080
HEALTH_PATH = "/healthz"
IMAGE_EXCLUDE = [
    "*",
    "!app.py",
    "!chalicelib",
    "!infra",
    "infra/cdk/cdk.out",
    "!requirements.txt",
    "!requirements-nodeps.txt",
    "!requirements-dev.txt",
    "**/__pycache__",
]
MAX_TASKS = 4
#: an upload of a large image is one long request: the ALB must not cut it (its maximum)
IDLE_TIMEOUT = Duration.seconds(4000)


class DataPlane(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        vpc: ec2.IVpc,
        bucket: s3.IBucket,
        key: kms.IKey,
        table_arns: list[str],
        environment: dict[str, str],
        certificate_arn: str | None,
        domain_name: str | None,
    ) -> None:
        super().__init__(scope, id)
        cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # ALB access logs: SSE-S3 only
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
        )
        task_role = iam.Role(
            self,
            "TaskRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="Kiln data plane: its tables, the artifact bucket, the key",
        )
        bucket.grant_read_write(task_role)
        key.grant_encrypt_decrypt(task_role)
        task_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "dynamodb:GetItem",
                    "dynamodb:BatchGetItem",
                    "dynamodb:Query",
                    "dynamodb:Scan",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:BatchWriteItem",
                    "dynamodb:ConditionCheckItem",
                    "dynamodb:DescribeTable",
                ],
                resources=[*table_arns, *(f"{arn}/index/*" for arn in table_arns)],
            )
        )
        image = ecs.ContainerImage.from_asset(
            str(REPO_ROOT),
            file="infra/cdk/assets/Dockerfile.data-plane",
            platform=ecr_assets.Platform.LINUX_ARM64,
            exclude=IMAGE_EXCLUDE,
            ignore_mode=IgnoreMode.DOCKER,
        )
        https = certificate_arn is not None
        self.service = ecs_patterns.ApplicationLoadBalancedFargateService(
            self,
            "Service",
            cluster=cluster,
            cpu=1024,
            memory_limit_mib=2048,
            desired_count=1,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.ARM64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
            task_image_options=ecs_patterns.ApplicationLoadBalancedTaskImageOptions(
                image=image,
                container_port=PORT,
                task_role=task_role,
                environment={
                    **environment,
                    "KILN_ARTIFACT_BUCKET": bucket.bucket_name,
                    "KILN_DATA_PLANE_PORT": str(PORT),
                },
                log_driver=ecs.LogDriver.aws_logs(
                    stream_prefix="data-plane",
                    log_group=logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_MONTH),
                ),
            ),
            public_load_balancer=True,
            task_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            idle_timeout=IDLE_TIMEOUT,
            # HTTPS with the given certificate; without one, plain HTTP (a test deployment:
            # bearer tokens would cross the internet in clear, so give a certificate)
            certificate=(
                acm.Certificate.from_certificate_arn(self, "Certificate", certificate_arn)
                if certificate_arn is not None
                else None
            ),
            protocol=(elbv2.ApplicationProtocol.HTTPS if https else elbv2.ApplicationProtocol.HTTP),
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS if https else None,
            redirect_http=https,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            min_healthy_percent=100,
        )
        lb = self.service.load_balancer
        lb.log_access_logs(access_logs, prefix="data-plane")
        lb.set_attribute("routing.http.drop_invalid_header_fields.enabled", "true")
        self.service.target_group.configure_health_check(
            path=HEALTH_PATH, healthy_http_codes="200", interval=Duration.seconds(30)
        )
        self.service.target_group.set_attribute("deregistration_delay.timeout_seconds", "120")
        scaling = self.service.service.auto_scale_task_count(min_capacity=1, max_capacity=MAX_TASKS)
        scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=60,
            scale_in_cooldown=Duration.minutes(5),
            scale_out_cooldown=Duration.minutes(1),
        )
        scheme = "https" if https else "http"
        host = domain_name or lb.load_balancer_dns_name
        #: the data plane's base URL (a token until deploy when no domain name is given)
        self.url: str = f"{scheme}://{host}"
        self._suppressions(access_logs)

    def _suppressions(self, access_logs: s3.Bucket) -> None:
        NagSuppressions.add_resource_suppressions(
            access_logs,
            [
                {
                    "id": "AwsSolutions-S1",
                    "reason": "the ALB access-log bucket: logging it to itself or another "
                    "bucket adds nothing",
                }
            ],
            apply_to_children=True,
        )
        NagSuppressions.add_resource_suppressions(
            self,
            [
                {
                    "id": "AwsSolutions-IAM5",
                    "reason": "bucket grant_read_write and the KMS grant add object and action "
                    "wildcards; the tables' indexes are table/<name>/index/*; the execution "
                    "role's log stream and ECR token statements come from CDK",
                },
                {
                    "id": "AwsSolutions-ECS2",
                    "reason": "the environment holds Kiln's settings (names, URLs, limits), no "
                    "secrets: the task reads AWS through its role",
                },
                {
                    "id": "AwsSolutions-EC23",
                    "reason": "an internet-facing ALB: the data plane's clients are on the "
                    "internet; requests authenticate with bearer tokens",
                },
                {
                    "id": "AwsSolutions-ELB2",
                    "reason": "access logging is on (log_access_logs); cdk-nag reads the "
                    "attribute before it is added",
                },
            ],
            apply_to_children=True,
        )
