"""Build capacity on AWS Batch: the other way to run builds, one arch per construct.

- a managed EC2 compute environment (min 0 vCPUs: no instance while nothing runs; Fargate
  cannot run privileged containers, and image builds need them), IMDSv2-only instances with a
  large encrypted root volume;
- a job queue and a job definition: a privileged container (``assets/Dockerfile.agent``, a
  Docker asset staged offline) running ``python -m builders.agent --one-shot``, which builds the
  one job whose build-queue message body is in ``KILN_JOB_MESSAGE`` and answers its task token;
- the feeder: a Lambda function (``builders.batch_feeder.lambda_handler``, Python 3.11, a
  container image of ``assets/Dockerfile.feeder`` as it imports the agent's modules), every
  minute (EventBridge), that
  receives from the arch's build queue, submits one Batch job per message (idempotently: the
  job name is derived from the Kiln job) and heartbeats the task tokens of jobs still waiting
  for capacity, so the state machine's HeartbeatSeconds does not expire while Batch scales up.

The job role has exactly a build host's permissions (``build_hosts.host_permissions``).
"""

from __future__ import annotations

from aws_cdk import Duration, IgnoreMode, Size, Stack
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import NagSuppressions
from constructs import Construct

from infra.cdk.build_hosts import REPO_ROOT, encrypted_root_volume, host_permissions

#: the agent image's build context: the repository root, only what the Dockerfile copies
AGENT_IMAGE_EXCLUDE = [
    "*",
    "!builders",
    "!chalicelib",
    "!requirements.txt",
    "!requirements-host.txt",
    "!requirements-dev.txt",
    "!infra/cdk/assets/Dockerfile.agent",
    "!infra/cdk/assets/Dockerfile.feeder",
    "**/__pycache__",
]
PLATFORM = {"x86_64": ecr_assets.Platform.LINUX_AMD64, "aarch64": ecr_assets.Platform.LINUX_ARM64}
JOB_TIMEOUT = Duration.hours(5)  # the state machine's job timeout (4 h) and some
ROOT_VOLUME_GIB = 100


class BatchBuilds(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        arch: str,
        vpc: ec2.IVpc,
        instance_types: list[str],
        max_vcpus: int,
        bucket: s3.IBucket,
        key: kms.IKey,
        build_queue: sqs.IQueue,
        events_queue: sqs.IQueue,
        state_machine: sfn.IStateMachine,
        environment: dict[str, str],
        job_vcpus: int = 4,
        job_memory_gib: int = 8,
    ) -> None:
        super().__init__(scope, id)
        if arch not in PLATFORM:
            raise ValueError(f"arch must be one of {sorted(PLATFORM)}: {arch!r}")
        del state_machine  # task tokens only: SendTask* has no resource-level permission

        security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"Kiln Batch builds ({arch}): egress only",
            allow_all_outbound=True,
        )
        launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            require_imdsv2=True,
            http_put_response_hop_limit=1,  # containers use the job role, not the instance's
            block_devices=[encrypted_root_volume(ROOT_VOLUME_GIB)],
        )
        self.compute_environment = batch.ManagedEc2EcsComputeEnvironment(
            self,
            "ComputeEnvironment",
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[security_group],
            instance_types=[ec2.InstanceType(name) for name in instance_types],
            use_optimal_instance_classes=False,
            minv_cpus=0,
            maxv_cpus=max_vcpus,
            launch_template=launch_template,
            update_to_latest_image_version=True,
        )
        self.job_queue = batch.JobQueue(
            self,
            "JobQueue",
            compute_environments=[
                batch.OrderedComputeEnvironment(
                    compute_environment=self.compute_environment, order=1
                )
            ],
        )

        self.job_role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description=f"Kiln Batch build job ({arch}): a build host's permissions",
        )
        host_permissions(
            self.job_role,
            bucket=bucket,
            key=key,
            build_queue=build_queue,
            events_queue=events_queue,
        )
        image = ecs.ContainerImage.from_asset(
            str(REPO_ROOT),
            file="infra/cdk/assets/Dockerfile.agent",
            platform=PLATFORM[arch],
            exclude=AGENT_IMAGE_EXCLUDE,
            ignore_mode=IgnoreMode.DOCKER,
        )
        self.log_group = logs.LogGroup(
            self, "JobLogs", retention=logs.RetentionDays.ONE_MONTH, encryption_key=None
        )
        self.job_definition = batch.EcsJobDefinition(
            self,
            "JobDefinition",
            container=batch.EcsEc2ContainerDefinition(
                self,
                "Container",
                image=image,
                cpu=job_vcpus,
                memory=Size.gibibytes(job_memory_gib),
                privileged=True,
                job_role=self.job_role,
                command=["python", "-m", "builders.agent", "--one-shot"],
                environment={
                    **environment,
                    "KILN_HOST_ARCH": arch,
                    "KILN_BUILD_QUEUE_URL": build_queue.queue_url,
                    "KILN_BUILD_EVENTS_QUEUE_URL": events_queue.queue_url,
                    "KILN_ARTIFACT_BUCKET": bucket.bucket_name,
                    "AWS_REGION": Stack.of(self).region,
                    "POWERTOOLS_SERVICE_NAME": "kiln-build-host",
                    # KILN_JOB_MESSAGE and KILN_HOST_XNAME: per job, set by the feeder
                },
                logging=ecs.LogDriver.aws_logs(stream_prefix="kiln", log_group=self.log_group),
            ),
            retry_attempts=1,  # the state machine retries a job, not Batch
            timeout=JOB_TIMEOUT,
        )
        self.feeder = self._feeder(arch, build_queue)
        self._suppressions()

    def _feeder(self, arch: str, build_queue: sqs.IQueue) -> lambda_.Function:
        # a container image: builders.batch_feeder imports the agent's modules, and those
        # need requirements.txt and requirements-host.txt (no pip at synth: offline)
        feeder = lambda_.DockerImageFunction(
            self,
            "Feeder",
            code=lambda_.DockerImageCode.from_image_asset(
                str(REPO_ROOT),
                file="infra/cdk/assets/Dockerfile.feeder",
                platform=ecr_assets.Platform.LINUX_AMD64,
                exclude=AGENT_IMAGE_EXCLUDE,
                ignore_mode=IgnoreMode.DOCKER,
            ),
            architecture=lambda_.Architecture.X86_64,
            timeout=Duration.seconds(50),  # inside the minute between runs
            memory_size=256,
            reserved_concurrent_executions=1,  # one feeder per arch at a time
            environment={
                "KILN_BATCH_JOB_QUEUE": self.job_queue.job_queue_arn,
                "KILN_BATCH_JOB_DEFINITION": self.job_definition.job_definition_arn,
                "KILN_BUILD_QUEUE_URL": build_queue.queue_url,
                "KILN_HOST_ARCH": arch,
            },
            log_group=logs.LogGroup(self, "FeederLogs", retention=logs.RetentionDays.ONE_MONTH),
            description=f"Kiln: build queue ({arch}) to AWS Batch jobs",
        )
        build_queue.grant_consume_messages(feeder)
        feeder.add_to_role_policy(
            iam.PolicyStatement(
                actions=["batch:SubmitJob"],
                resources=[self.job_queue.job_queue_arn, self._definition_arn_any_revision()],
            )
        )
        feeder.add_to_role_policy(
            iam.PolicyStatement(
                # ListJobs and DescribeJobs take no resource-level permission
                actions=["batch:ListJobs", "batch:DescribeJobs"],
                resources=["*"],
            )
        )
        feeder.add_to_role_policy(
            iam.PolicyStatement(
                # task tokens: SendTask* has no resource-level permission
                actions=["states:SendTaskHeartbeat", "states:SendTaskFailure"],
                resources=["*"],
            )
        )
        events.Rule(
            self,
            "FeederSchedule",
            schedule=events.Schedule.rate(Duration.minutes(1)),
            targets=[targets.LambdaFunction(feeder, retry_attempts=0)],
            description=f"Kiln: feed {arch} build jobs to AWS Batch every minute",
        )
        return feeder

    def _definition_arn_any_revision(self) -> str:
        """SubmitJob is authorized on the definition's ARN with its revision: any revision."""
        stack = Stack.of(self)
        name = self.job_definition.job_definition_name
        return stack.format_arn(
            service="batch", resource="job-definition", resource_name=f"{name}:*"
        )

    def _suppressions(self) -> None:
        NagSuppressions.add_resource_suppressions(
            self,
            [
                {
                    "id": "AwsSolutions-IAM4",
                    "reason": "AWS managed policies CDK attaches: the Batch service role, the "
                    "ECS instance role (AmazonEC2ContainerServiceforEC2Role), the Lambda "
                    "basic execution role; each is AWS's least-privilege policy for its service",
                },
                {
                    "id": "AwsSolutions-IAM5",
                    "reason": "the job role is a build host's (build_hosts.host_permissions: "
                    "key prefixes, task tokens, AMI/snapshot ids unknown in advance); "
                    "ListJobs/DescribeJobs and SendTask* have no resource-level permission; "
                    "SubmitJob on any revision of this job definition",
                },
                {
                    "id": "AwsSolutions-L1",
                    "reason": "Python 3.11: the runtime the agent and Kiln's code are built for "
                    "(pyproject requires-python >= 3.11, the Chalice app's runtime)",
                },
            ],
            apply_to_children=True,
        )
