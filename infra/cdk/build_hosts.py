"""Build capacity on EC2: one Auto Scaling group of Debian 12 build hosts per architecture.

Each instance runs the agent (``python -m builders.agent``, systemd unit ``kiln-host.service``)
from a bundle of the repository's ``builders/``, ``chalicelib/`` and ``requirements*.txt``: a
CDK asset (zip in the bootstrap bucket, staged offline at synth), so a deploy ships the agent
and a changed agent is a new launch template version. The user data is
``assets/host_bootstrap.sh`` after a header this module writes (packages, venv, environment in
``/etc/kiln/host.env``, the units).

Registration: the agent does not register itself. Its node heartbeats make the API side record
an unregistered node (xname = the instance id); it takes work only once the node is registered
(``control/build-nodes/<xname>.json``, written by the API side). An auto-scaled host therefore
needs the API side to register it (see the report: a change outside these constructs).

Scaling (from zero): step scaling on Kiln's own metric ``Kiln/JobsAwaitingNode`` (dimensions
``arch``, and ``service=kiln``, which Powertools adds from POWERTOOLS_SERVICE_NAME), published
every 5 minutes by the cleanup schedule, plus the build queue's visible messages (jobs sent
while every node is busy). Queue depth alone cannot drive it: with no node, Kiln keeps waiting
jobs out of the queue. Waiting > 0: add about as many hosts as jobs wait (to max_capacity);
waiting = 0 for ``SCALE_IN_PERIODS`` periods of 5 minutes: remove one host.

Drain (scale-in): a termination lifecycle hook (``kiln-drain``, heartbeat 1 hour, default
CONTINUE) holds the instance in Terminating:Wait. On the instance, ``kiln-drain.service`` polls
IMDS ``autoscaling/target-lifecycle-state``; on "Terminated" it sends the agent SIGUSR1
(``agent.finish``: the job in hand runs to its answer, no new one is taken, then the agent exits
75, which systemd does not restart), records a lifecycle-action heartbeat every 10 minutes while
the job runs, and then calls ``aws autoscaling complete-lifecycle-action``. No EventBridge rule,
no SSM document: the instance drains itself.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, Names, Stack, Tags, Token
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import NagSuppressions
from constructs import Construct

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSETS = Path(__file__).resolve().parent / "assets"
#: Makefile HOST_PACKAGES (kept equal by hand: the Makefile is not read at synth)
HOST_PACKAGES = (
    "mmdebstrap arch-test squashfs-tools rsync openssh-server qemu-user-static binfmt-support "
    "dosfstools mtools e2fsprogs fdisk qemu-utils qemu-system-x86 ovmf libmagic1 libarchive13"
)
DEBIAN_AMI_PARAMETER = {
    "x86_64": "/aws/service/debian/release/12/latest/amd64",
    "aarch64": "/aws/service/debian/release/12/latest/arm64",
}
#: the agent bundle: only these paths of the repository (everything else excluded)
AGENT_BUNDLE_EXCLUDE = [
    "*",
    ".*",
    "!builders",
    "!builders/**",
    "!chalicelib",
    "!chalicelib/**",
    "!requirements.txt",
    "!requirements-host.txt",
    "!requirements-dev.txt",
    "**/__pycache__",
    "**/*.pyc",
]
LIFECYCLE_HOOK = "kiln-drain"
DRAIN_TIMEOUT = Duration.hours(1)
METRIC_NAMESPACE = "Kiln"
METRIC_NAME = "JobsAwaitingNode"
METRIC_SERVICE = "kiln"  # Powertools' "service" dimension (POWERTOOLS_SERVICE_NAME)
SCALE_IN_PERIODS = 6  # 30 minutes without waiting jobs
DEFAULT_ROOT_VOLUME_GIB = 100

# S3 prefixes the agent uses in the artifact bucket (builders/, chalicelib/adapters/artifacts.py)
READ_PREFIXES = (
    "control/*",  # control/build-nodes/<xname>.json, control/jobs/<id>/cancel
    "recipes/*",  # IMS recipes
    "composes/*",  # composer's generated recipes
    "uploads/*",  # tenants' upload areas (customize source artifacts)
    "images/*",  # customize source images, koji-import files
    "jobs/*",  # koji-import: the build log
    "cachito-cache/*",  # Cachito's shared dependency cache
    "build-cache/*",  # the build cache's entries and artifacts (docs/build-cache.md)
)
WRITE_PREFIXES = (
    "images/*",  # artifacts and manifest.json (artifact_prefix)
    "jobs/*",  # build.log and live log chunks
    "cachito/requests/*",  # Cachito bundles (artifact_prefix)
    "cachito-cache/*",
    "build-cache/*",  # a cacheable build's artifacts (never deleted by hosts)
)
DELETE_PREFIXES = ("cachito/requests/*", "cachito-cache/*")


def encrypted_root_volume(gib: int) -> ec2.BlockDevice:
    """The build host's (or Batch instance's) root volume: gp3, encrypted, gone with it."""
    return ec2.BlockDevice(
        device_name="/dev/xvda",  # Debian's and the ECS AMIs' root device
        volume=ec2.BlockDeviceVolume.ebs(
            gib, volume_type=ec2.EbsDeviceVolumeType.GP3, encrypted=True, delete_on_termination=True
        ),
    )


def host_permissions(
    grantee: iam.IGrantable,
    *,
    bucket: s3.IBucket,
    key: kms.IKey,
    build_queue: sqs.IQueue,
    events_queue: sqs.IQueue,
) -> None:
    """What the agent needs, on an EC2 host or in a Batch job: its arch's build queue, the
    events queue, the Step Functions task-token calls, its bucket prefixes, the key, and the
    ``aws`` upload target (EBS direct APIs, AMI registration)."""
    build_queue.grant_consume_messages(grantee)  # receive, delete, change visibility
    events_queue.grant_send_messages(grantee)
    key.grant_encrypt_decrypt(grantee)
    for prefix in READ_PREFIXES:
        bucket.grant_read(grantee, prefix)
    for prefix in WRITE_PREFIXES:
        bucket.grant_put(grantee, prefix)
    for prefix in DELETE_PREFIXES:
        bucket.grant_delete(grantee, prefix)
    iam.Grant.add_to_principal(
        grantee=grantee,
        # SendTask* take no resource-level permission (the task token names the task)
        actions=["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"],
        resource_arns=["*"],
    )
    iam.Grant.add_to_principal(
        grantee=grantee,
        # the "aws" upload target (builders/uploads/aws_ec2.py): a snapshot through the EBS
        # direct APIs, then an AMI shared with the accounts a request names; AMI and snapshot
        # ids are not known in advance, and StartSnapshot/RegisterImage create them
        actions=[
            "ebs:StartSnapshot",
            "ebs:PutSnapshotBlock",
            "ebs:CompleteSnapshot",
            "ec2:DescribeSnapshots",
            "ec2:DescribeImages",
            "ec2:RegisterImage",
            "ec2:DeregisterImage",
            "ec2:ModifyImageAttribute",
            "ec2:ModifySnapshotAttribute",
            "ec2:CreateTags",
        ],
        resource_arns=["*"],
    )


def agent_bundle(scope: Construct, id: str) -> s3_assets.Asset:
    """The agent's code and requirements as a zip asset (staged offline)."""
    return s3_assets.Asset(scope, id, path=str(REPO_ROOT), exclude=AGENT_BUNDLE_EXCLUDE)


def _env_lines(environment: dict[str, str]) -> list[str]:
    """systemd EnvironmentFile lines (values double-quoted; tokens resolve at deploy)."""
    lines = []
    for name, value in sorted(environment.items()):
        if not Token.is_unresolved(value):
            value = value.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'{name}="{value}"')
    return lines


class BuildHostFleet(Construct):
    """One architecture's build hosts: launch template, Auto Scaling group, drain, scaling."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        arch: str,
        vpc: ec2.IVpc,
        instance_types: list[str],
        min_capacity: int,
        max_capacity: int,
        bucket: s3.IBucket,
        key: kms.IKey,
        build_queue: sqs.IQueue,
        events_queue: sqs.IQueue,
        state_machine: sfn.IStateMachine,
        environment: dict[str, str],
        root_volume_gib: int = DEFAULT_ROOT_VOLUME_GIB,
    ) -> None:
        super().__init__(scope, id)
        if arch not in DEBIAN_AMI_PARAMETER:
            raise ValueError(f"arch must be one of {sorted(DEBIAN_AMI_PARAMETER)}: {arch!r}")
        if not instance_types:
            raise ValueError("instance_types: at least one")
        self.arch = arch
        # state_machine: the hosts answer it through task tokens only (SendTask* has no
        # resource-level permission); kept in the signature for the core stack's wiring
        del state_machine

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description=f"Kiln build host ({arch})",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")
            ],
        )
        host_permissions(
            self.role, bucket=bucket, key=key, build_queue=build_queue, events_queue=events_queue
        )
        bundle = agent_bundle(self, "AgentBundle")
        bundle.grant_read(self.role)

        fleet_tag = Names.unique_id(self)[-60:]
        Tags.of(self).add("kiln:fleet", fleet_tag)
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                # the drain completes its own instance's lifecycle action; the group's name is
                # generated, so the statement is scoped by the group's tag, not its ARN
                actions=[
                    "autoscaling:CompleteLifecycleAction",
                    "autoscaling:RecordLifecycleActionHeartbeat",
                ],
                resources=["*"],
                conditions={"StringEquals": {"autoscaling:ResourceTag/kiln:fleet": fleet_tag}},
            )
        )

        host_env = {
            **environment,
            "KILN_HOST_ARCH": arch,
            "KILN_BUILD_QUEUE_URL": build_queue.queue_url,
            "KILN_BUILD_EVENTS_QUEUE_URL": events_queue.queue_url,
            "KILN_ARTIFACT_BUCKET": bucket.bucket_name,
            "KILN_LIFECYCLE_HOOK": LIFECYCLE_HOOK,
            "POWERTOOLS_SERVICE_NAME": "kiln-build-host",
        }
        user_data = ec2.UserData.for_linux()
        user_data.add_commands(
            "set -euo pipefail",
            f"KILN_AGENT_BUNDLE='{bundle.s3_object_url}'",
            f"KILN_REGION='{Stack.of(self).region}'",
            f"KILN_HOST_PACKAGES='{HOST_PACKAGES}'",
            "install -d -m 0755 /etc/kiln",
            "cat > /etc/kiln/host.env.static <<'KILNENV'",
            *_env_lines(host_env),
            "KILNENV",
            (ASSETS / "host_bootstrap.sh").read_text(),
        )

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"Kiln build hosts ({arch}): egress only, access through SSM",
            allow_all_outbound=True,
        )
        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            machine_image=ec2.MachineImage.from_ssm_parameter(
                DEBIAN_AMI_PARAMETER[arch], os=ec2.OperatingSystemType.LINUX
            ),
            role=self.role,
            user_data=user_data,
            security_group=self.security_group,
            require_imdsv2=True,
            http_put_response_hop_limit=1,
            instance_metadata_tags=True,  # the drain reads aws:autoscaling:groupName
            detailed_monitoring=True,
            block_devices=[encrypted_root_volume(root_volume_gib)],
        )
        self.group = autoscaling.AutoScalingGroup(
            self,
            "Group",
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            min_capacity=min_capacity,
            max_capacity=max_capacity,
            mixed_instances_policy=autoscaling.MixedInstancesPolicy(
                launch_template=self.launch_template,
                launch_template_overrides=[
                    autoscaling.LaunchTemplateOverrides(instance_type=ec2.InstanceType(name))
                    for name in instance_types
                ],
                instances_distribution=autoscaling.InstancesDistribution(
                    on_demand_percentage_above_base_capacity=100,  # builds run for hours
                    on_demand_allocation_strategy=(
                        autoscaling.OnDemandAllocationStrategy.PRIORITIZED
                    ),
                ),
            ),
            health_checks=autoscaling.HealthChecks.ec2(grace_period=Duration.minutes(15)),
            group_metrics=[autoscaling.GroupMetrics.all()],
        )
        self.group.add_lifecycle_hook(
            "Drain",
            lifecycle_hook_name=LIFECYCLE_HOOK,
            lifecycle_transition=autoscaling.LifecycleTransition.INSTANCE_TERMINATING,
            heartbeat_timeout=DRAIN_TIMEOUT,
            default_result=autoscaling.DefaultResult.CONTINUE,
        )
        self._scaling(build_queue, max_capacity)
        self._suppressions()

    def waiting_metric(self, build_queue: sqs.IQueue) -> cloudwatch.IMetric:
        """Jobs of this arch no host has taken: held for want of a node, or in the queue."""
        period = Duration.minutes(5)
        awaiting = cloudwatch.Metric(
            namespace=METRIC_NAMESPACE,
            metric_name=METRIC_NAME,
            dimensions_map={"arch": self.arch, "service": METRIC_SERVICE},
            statistic="Maximum",
            period=period,
        )
        queued = build_queue.metric_approximate_number_of_messages_visible(
            statistic="Maximum", period=period
        )
        return cloudwatch.MathExpression(
            expression="FILL(awaiting, 0) + FILL(queued, 0)",
            using_metrics={"awaiting": awaiting, "queued": queued},
            label=f"Kiln jobs waiting for a {self.arch} host",
            period=period,
        )

    def _scaling(self, build_queue: sqs.IQueue, max_capacity: int) -> None:
        # add ceil(waiting) hosts: one step per count up to 10 (metric values are whole jobs),
        # then the most the group may have
        top = max(1, min(max_capacity, 10))
        steps = [autoscaling.ScalingInterval(upper=0, change=-1)]
        steps += [
            autoscaling.ScalingInterval(lower=n, upper=n + 1, change=n) for n in range(1, top)
        ]
        steps.append(autoscaling.ScalingInterval(lower=top, change=max(top, max_capacity)))
        policy = self.group.scale_on_metric(
            "ScaleOnWaitingJobs",
            metric=self.waiting_metric(build_queue),
            scaling_steps=steps,
            adjustment_type=autoscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            evaluation_periods=SCALE_IN_PERIODS,
            datapoints_to_alarm=SCALE_IN_PERIODS,
            estimated_instance_warmup=Duration.minutes(10),  # boot, packages, venv
        )
        # scale_on_metric gives both alarms the same evaluation periods: the scale-out alarm
        # fires on one period instead (a waiting job should not wait 30 minutes for a host)
        if policy.upper_alarm is not None:
            cfn_alarm = policy.upper_alarm.node.default_child
            assert isinstance(cfn_alarm, cloudwatch.CfnAlarm)
            cfn_alarm.evaluation_periods = 1
            cfn_alarm.datapoints_to_alarm = 1

    def _suppressions(self) -> None:
        NagSuppressions.add_resource_suppressions(
            self,
            [
                {
                    "id": "AwsSolutions-IAM4",
                    "reason": "AmazonSSMManagedInstanceCore: Session Manager access instead of "
                    "SSH, AWS's least-privilege policy for it",
                    "applies_to": [
                        "Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore"
                    ],
                },
                {
                    "id": "AwsSolutions-IAM5",
                    "reason": "S3 object wildcards are the agent's key prefixes; SendTask* has "
                    "no resource-level permission; the aws upload target creates AMIs and "
                    "snapshots whose ids are unknown; the lifecycle action is scoped by the "
                    "group's tag; grant_read/grant_put/KMS grants add their action wildcards",
                },
                {
                    "id": "AwsSolutions-AS3",
                    "reason": "scaling activity is in the group's activity history and "
                    "CloudWatch group metrics; no one acts on per-event notifications",
                },
            ],
            apply_to_children=True,
        )
